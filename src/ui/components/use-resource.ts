/**
 * Loads one API resource for a view and reloads it on demand; a view shows `error` as a problem
 * banner instead of a blank page. A stale response (the view asked again meanwhile) is dropped.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { live } from '../events.ts';

export interface Resource<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

export function useResource<T>(load: () => Promise<T>, deps: readonly unknown[]): Resource<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setLoading(true);
    load().then(
      (value) => {
        if (mine !== seq.current) return;
        setData(value);
        setError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (mine !== seq.current) return;
        setError(err);
        setLoading(false);
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(run, [run]);
  // After the live stream was down (a daemon restart), what was missed is read again.
  useEffect(() => live.onResync(run), [run]);
  return { data, error, loading, reload: run };
}
