/**
 * node-soap's HTTP client for one target, on Node's own http(s).request: node-soap accepts any
 * function with axios' request shape (options in; `{ status, headers, data }` out). axios did the
 * same with about 0.5 ms more CPU per call, which on a create + remove cycle of four calls was a
 * fifth of the adapter's time.
 *
 * - Keep-alive and TLS (pinned CA, thumbprint, insecure) come from the agent the caller passes.
 * - Redirects are never followed: a redirect would re-send the Login body (the password).
 * - The session cookie `vmware_soap_session` is kept here, per target, and sent with every call.
 * - `timeout` bounds the whole exchange; `signal` aborts it. Errors carry Node's codes
 *   (ECONNREFUSED, ECONNRESET, certificate codes…, ETIMEDOUT for our timeout, ABORT_ERR for a
 *   signal), which faults.ts classifies; they never carry the request body.
 */
import http from 'node:http';
import https from 'node:https';
import { asArray } from './parse.ts';

/** What node-soap's HttpClient passes (lib/http.js buildRequest + the call's options). */
export interface SoapHttpOptions {
  url: string;
  method: string;
  headers: Record<string, string | number>;
  data?: string | Buffer;
  timeout?: number;
  signal?: AbortSignal;
}

export interface SoapHttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  data: string;
}

export interface SoapHttp {
  request(options: SoapHttpOptions): Promise<SoapHttpResponse>;
  /** Drops the session cookie (before a new Login). */
  forgetSession(): void;
  /** The server's clock from the newest response's Date header (1 s resolution), with when it arrived here. */
  lastServerDate(): { serverMs: number; receivedMs: number } | undefined;
}

const SESSION_COOKIE = 'vmware_soap_session';

function codedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

export function createSoapHttp(agent: http.Agent): SoapHttp {
  let cookie: string | undefined;
  let serverDate: { serverMs: number; receivedMs: number } | undefined;
  return {
    forgetSession() {
      cookie = undefined;
    },
    lastServerDate: () => serverDate,
    request(options) {
      return new Promise<SoapHttpResponse>((resolve, reject) => {
        const headers = cookie === undefined ? options.headers : { ...options.headers, Cookie: cookie };
        const send = options.url.startsWith('https:') ? https.request : http.request;
        const req = send(options.url, { method: options.method, headers, agent, ...(options.signal ? { signal: options.signal } : {}) }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', fail);
          res.on('end', () => {
            const found = asArray<string>(res.headers['set-cookie']).find((c) => c.startsWith(`${SESSION_COOKIE}=`));
            if (found) cookie = found.split(';')[0];
            const date = res.headers.date === undefined ? NaN : Date.parse(res.headers.date);
            if (!Number.isNaN(date)) serverDate = { serverMs: date, receivedMs: Date.now() };
            done();
            resolve({ status: res.statusCode ?? 0, headers: res.headers, data: Buffer.concat(chunks).toString('utf8') });
          });
        });
        const timer =
          options.timeout !== undefined && options.timeout > 0
            ? setTimeout(() => req.destroy(codedError(`no answer within ${options.timeout} ms`, 'ETIMEDOUT')), options.timeout)
            : undefined;
        function done() {
          if (timer) clearTimeout(timer);
        }
        function fail(err: Error) {
          done();
          reject(err);
        }
        req.on('error', fail);
        req.end(options.data);
      });
    },
  };
}
