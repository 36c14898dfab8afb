/**
 * Calls every listener with the same arguments. It iterates a copy, so a listener that unsubscribes
 * itself (or another) while being told changes nothing for this round. One that throws is handed to
 * `onThrow` and the rest are still told: a broken subscriber must not break whoever emitted.
 */
export function tellEach<A extends unknown[]>(listeners: Iterable<(...args: A) => void>, args: A, onThrow: (err: unknown) => void): void {
  for (const listener of [...listeners]) {
    try {
      listener(...args);
    } catch (err) {
      onThrow(err);
    }
  }
}
