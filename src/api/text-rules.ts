/**
 * What the API refuses in a snapshot's name and description, before any job exists. A name is kept
 * exactly as sent or refused — never trimmed, normalised or re-encoded — so it must be text every
 * hypervisor stores as given:
 *
 * - no lone UTF-16 surrogates (a `"\ud800"` escape in JSON): not a character, no UTF-8 for it;
 * - no control characters U+0000–U+001F or U+007F — in a description, LF (U+000A) and TAB
 *   (U+0009) are allowed (descriptions are multi-line text; send LF line ends, CR is refused);
 * - invalid UTF-8 in the body itself is refused by the body parser (json-body.ts).
 *
 * The providers have their own, looser rules (a provider-level name may hold a newline); the API's
 * are stricter on purpose.
 */
import { SnapvisorError } from '../domain/errors.ts';

const C0_NAMES = [
  'NUL', 'start of heading', 'start of text', 'end of text', 'end of transmission', 'enquiry', 'acknowledge', 'bell',
  'backspace', 'tab', 'line feed', 'vertical tab', 'form feed', 'carriage return', 'shift out', 'shift in',
  'data link escape', 'device control one', 'device control two', 'device control three', 'device control four',
  'negative acknowledge', 'synchronous idle', 'end of transmission block', 'cancel', 'end of medium', 'substitute',
  'escape', 'file separator', 'group separator', 'record separator', 'unit separator',
];

const hex = (cp: number) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/** The character a field may not hold, described; null when it is fine. Positions count characters (code points) from 0. */
export function forbiddenCharacter(value: string, allowed: ReadonlySet<number> = new Set()): string | null {
  let position = 0;
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) return `a lone surrogate ${hex(cp)} (not a character) at position ${position}`;
    if ((cp < 0x20 || cp === 0x7f) && !allowed.has(cp)) return `${hex(cp)} (${cp === 0x7f ? 'delete' : C0_NAMES[cp]}) at position ${position}`;
    position++;
  }
  return null;
}

const DESCRIPTION_ALLOWS: ReadonlySet<number> = new Set([0x09, 0x0a]);

/** Throws a 400 (SNAPVISOR_ERR_NAME_INVALID / _DESCRIPTION_INVALID) naming the first forbidden character. */
export function checkSnapshotText(text: { name: string; description?: string | undefined }): void {
  const inName = forbiddenCharacter(text.name);
  if (inName !== null) {
    const detail = `the snapshot name contains ${inName}`;
    throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_NAME_INVALID', detail, { extra: { problems: [detail] } });
  }
  if (text.description === undefined) return;
  const inDescription = forbiddenCharacter(text.description, DESCRIPTION_ALLOWS);
  if (inDescription !== null) {
    const detail = `the snapshot description contains ${inDescription}`;
    throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_DESCRIPTION_INVALID', detail, { extra: { problems: [detail] } });
  }
}
