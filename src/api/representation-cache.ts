/**
 * Serialized JSON bodies keyed by their ETag (which carries the VM's snapshot revision), so a
 * repeated read of an unchanged tree costs a revision lookup instead of a query, a tree build and
 * a serialization. Entries never go stale — a change bumps the revision and so the key — they only
 * age out: least recently used first, within a byte budget.
 */
export interface RepresentationCache {
  get(key: string): string | undefined;
  set(key: string, body: string): void;
  readonly size: number;
}

export function createRepresentationCache(maxBytes = 32 * 1024 * 1024): RepresentationCache {
  const entries = new Map<string, string>();
  let bytes = 0;
  return {
    get(key) {
      const body = entries.get(key);
      if (body !== undefined) {
        // Map keeps insertion order: re-inserting marks it most recently used.
        entries.delete(key);
        entries.set(key, body);
      }
      return body;
    },
    set(key, body) {
      if (body.length > maxBytes) return; // also: a budget of 0 turns the cache off
      const old = entries.get(key);
      if (old !== undefined) {
        bytes -= old.length;
        entries.delete(key);
      }
      entries.set(key, body);
      bytes += body.length;
      for (const [k, v] of entries) {
        if (bytes <= maxBytes) break;
        entries.delete(k);
        bytes -= v.length;
      }
    },
    get size() {
      return entries.size;
    },
  };
}
