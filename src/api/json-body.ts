/**
 * The one body parser (application/json), instead of Fastify's: it reads the body as bytes so that
 * invalid UTF-8 is refused rather than silently replaced by U+FFFD (a snapshot name must be kept as
 * sent or refused, never changed), and it names the offending key when a body carries `__proto__`
 * or `constructor.prototype` (Fastify's parser says only "forbidden prototype property").
 */
import { isUtf8 } from 'node:buffer';
import type { FastifyRequest } from 'fastify';

/** A refused body; plugins/problem.ts shows its message as the problem's detail. */
export class MalformedBody extends Error {
  override readonly name = 'MalformedBody';
  readonly code = 'SNAPVISOR_ERR_MALFORMED_BODY';
  readonly statusCode = 400;
}

/** Fastify's own error code for an empty body sent as JSON; problem.ts maps it. */
class EmptyJsonBody extends Error {
  readonly code = 'FST_ERR_CTP_EMPTY_JSON_BODY';
  readonly statusCode = 400;
}

/** Where the first invalid UTF-8 sequence starts (a byte offset), per RFC 3629; -1 when none. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let length: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [length, min] = [2, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [length, min] = [3, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [length, min] = [4, 0x10000];
    else return i;
    if (i + length > bytes.length) return i;
    let cp = b & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += length;
  }
  return -1;
}

/** The first forbidden key in a parsed body, as secure-json-parse defines them; null when none. */
export function forbiddenKey(value: unknown): '__proto__' | 'constructor.prototype' | null {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== 'object') continue;
    if (Object.prototype.hasOwnProperty.call(node, '__proto__')) return '__proto__';
    const ctor = Object.prototype.hasOwnProperty.call(node, 'constructor') ? (node as Record<string, unknown>)['constructor'] : undefined;
    if (ctor !== null && typeof ctor === 'object' && Object.prototype.hasOwnProperty.call(ctor, 'prototype')) return 'constructor.prototype';
    for (const child of Object.values(node)) if (child !== null && typeof child === 'object') stack.push(child);
  }
  return null;
}

export function parseJsonBody(_request: FastifyRequest, body: Buffer, done: (err: Error | null, value?: unknown) => void): void {
  if (body.length === 0) return done(new EmptyJsonBody('the body is empty but Content-Type is application/json'));
  const at = isUtf8(body) ? -1 : firstInvalidUtf8(body);
  if (at !== -1) {
    const byte = body[at] ?? 0;
    return done(new MalformedBody(`the body is not valid UTF-8: byte 0x${byte.toString(16).toUpperCase().padStart(2, '0')} at offset ${at}`));
  }
  let value: unknown;
  try {
    // JSON.parse makes "__proto__" an own property (no prototype change); it is refused just below.
    const text = body.toString('utf8');
    // A leading byte-order mark is encoding, not content (Fastify's parser drops it too).
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    return done(err as Error);
  }
  const key = forbiddenKey(value);
  if (key !== null) return done(new MalformedBody(`the body must not contain a ${key} key`));
  done(null, value);
}
