/** The CLI's HTTP client: JSON in, JSON out, problems as ApiError. */
import type { ProblemJson } from './format.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemJson,
  ) {
    super(problem.detail ?? `HTTP ${status}`);
  }
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

export interface ClientOptions {
  url: string;
  token: string | undefined;
  fetch: typeof fetch;
}

export function createClient(options: ClientOptions) {
  const base = options.url.replace(/\/+$/, '');

  /** The response of a request that succeeded (2xx); anything else is an ApiError. */
  async function send(method: string, path: string, init: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json', ...init.headers };
    if (options.token) headers['authorization'] = `Bearer ${options.token}`;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await options.fetch(`${base}${path}`, {
        method,
        headers,
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
    } catch (err) {
      const reason = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new ApiError(0, { title: 'Cannot reach Snapvisor', detail: `${base}: ${reason}` });
    }
    if (response.ok) return response;
    // Not JSON (a proxy's error page): the text makes the message below.
    const { text, body } = await readBody(response);
    const problem: ProblemJson =
      body !== null && typeof body === 'object' ? (body as ProblemJson) : { title: `HTTP ${response.status}`, detail: String(text).slice(0, 200) };
    throw new ApiError(response.status, problem);
  }

  async function request<T>(method: string, path: string, init: { body?: unknown; headers?: Record<string, string> } = {}): Promise<ApiResponse<T>> {
    const response = await send(method, path, init);
    // A 2xx that is not JSON is handed back as text.
    const { body } = await readBody(response);
    return { status: response.status, body: body as T };
  }

  return { request, send };
}

/** A response body as JSON when it parses (null when empty), else as its text. */
async function readBody(response: Response): Promise<{ text: string; body: unknown }> {
  const text = await response.text();
  try {
    return { text, body: text === '' ? null : JSON.parse(text) };
  } catch {
    return { text, body: text };
  }
}

export type Client = ReturnType<typeof createClient>;
