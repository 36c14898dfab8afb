/**
 * Hash routes (#/vms/<id>): the daemon serves one index.html, and a reload or a bookmark lands on
 * the same view without any server-side routing.
 */
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  /** Decoded path segments: "#/vms/abc" → ['vms', 'abc']. */
  parts: string[];
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, '');
  const [path = '', search = ''] = raw.split('?', 2);
  const parts = path.split('/').filter((p) => p !== '').map((p) => decodeURIComponent(p));
  return { parts, params: new URLSearchParams(search) };
}

/** A hash link from segments, each encoded: ids and names are data. */
export function href(parts: string[], params?: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return `#/${parts.map(encodeURIComponent).join('/')}${s ? `?${s}` : ''}`;
}

export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, '', to);
  else location.hash = to.replace(/^#/, '');
  if (replace) window.dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
