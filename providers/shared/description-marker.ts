/**
 * Where a hypervisor keeps no tags, the Snapvisor marker (`snapvisor:<jobId>`) is stored as the
 * last line of the snapshot description. A user description is separated from it by a blank line
 * so it comes back exactly, including its own trailing newlines; a last line that merely starts
 * with the prefix but contains whitespace is the user's text, not a marker.
 */
import { MARKER_PREFIX } from '../contract.ts';

export function descriptionWithMarker(description: string, marker: string): string {
  return description === '' ? marker : `${description}\n\n${marker}`;
}

export function splitMarker(raw: string): { description: string; marker: string | null } {
  const nl = raw.lastIndexOf('\n');
  const last = raw.slice(nl + 1);
  if (!last.startsWith(MARKER_PREFIX) || /\s/.test(last)) return { description: raw, marker: null };
  if (nl === -1) return { description: '', marker: last };
  const before = raw.slice(0, nl);
  return { description: before.endsWith('\n') ? before.slice(0, -1) : before, marker: last };
}
