/**
 * `items.map(fn)` with at most `limit` calls running at once (each remote command is a session on a
 * shared SSH connection: OpenSSH allows 10 by default). Results keep the input's order. After a
 * failure no new call starts; the first failure is what rejects.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!(limit >= 1)) throw new RangeError(`mapLimit: limit must be at least 1 (got ${limit})`);
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
