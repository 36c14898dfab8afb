/**
 * The console's only way to the daemon: the public REST API, same origin, with the bearer token in
 * the Authorization header (never in a URL). Every failure becomes an ApiError carrying the
 * problem+json body, so views can say what a 401 or 403 means instead of "error".
 */
import type { Problem } from './types.ts';
import { session } from './session.ts';

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail || problem.title);
  }
  get status(): number {
    return this.problem.status;
  }
}

/** What an error means to the person looking at the console. */
export function explain(err: unknown): string {
  if (err instanceof ApiError) {
    const p = err.problem;
    if (p.status === 401) return 'This token was not accepted (401): it is unknown, or was revoked. Sign in again.';
    if (p.status === 403) return `This token may not do that (403): ${p.detail}`;
    const fields = p.errors?.map((e) => `${e.path || 'body'}: ${e.message}`).join('; ');
    return `${p.title} (${p.status}): ${p.detail}${fields ? ` — ${fields}` : ''}`;
  }
  if (err instanceof TypeError) return 'The daemon could not be reached.';
  return err instanceof Error ? err.message : String(err);
}

/** Path segments from data (ids, names) are always encoded. */
export const seg = (value: string) => encodeURIComponent(value);

export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

export async function request<T>(method: string, path: string, body?: unknown, token = session.token(), extra: Record<string, string> = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...extra };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), cache: 'no-store' });
  const text = await res.text();
  const parsed: unknown = text === '' ? null : JSON.parse(text);
  if (!res.ok) {
    const problem = (parsed ?? { title: res.statusText, status: res.status, detail: '' }) as Problem;
    const err = new ApiError({ ...problem, status: res.status });
    if (res.status === 401 && token !== null && token === session.token()) session.expired(explain(err));
    throw err;
  }
  return parsed as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body: unknown = {}, headers?: Record<string, string>) => request<T>('POST', path, body, session.token(), headers),
  patch: <T>(path: string, body: unknown) => request<T>('PATCH', path, body),
  del: <T>(path: string) => request<T>('DELETE', path),
};
