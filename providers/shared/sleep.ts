/**
 * A wait that a cancelled job does not sit out: it ends as soon as the signal aborts — rejecting
 * with `onAbort()` when given (the caller's error says what it was waiting for), else resolving early.
 */
export function sleep(ms: number, signal: AbortSignal, onAbort?: () => Error): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const stop = () => (onAbort ? reject(onAbort()) : resolve());
    if (signal.aborted) return stop();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      stop();
    };
    signal.addEventListener('abort', abort, { once: true });
  });
}

/** True when `p` settles (either way) within `ms`; false when the time ran out first. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    t = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(t);
  }
}
