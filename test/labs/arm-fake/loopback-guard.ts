/**
 * guardLoopback(t): while active, any TCP connection (plain, TLS, http, https, fetch/undici) to a host
 * that is not loopback (127.0.0.0/8, ::1, localhost) is refused before a packet leaves — the socket is
 * destroyed with an error — and the test fails naming the host. Unix-domain sockets are not TCP and pass.
 *
 * How: every client TCP connection in Node goes through net.Socket.prototype.connect (net.connect,
 * tls.connect, http(s).Agent and undici all end there), so the guard wraps it while active. The
 * `http.client.request.start` diagnostics channel (present in Node 20.20) also reports the host of every
 * node:http(s) request, which catches a proxy being used: the request then names the real host.
 */
import net from 'node:net';
import diagnostics from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

/** The part of a tap Test the guard uses (a tap `Test` fits). */
export interface GuardTest {
  fail(message: string): unknown;
  teardown(fn: () => void | Promise<void>): unknown;
}

export interface LoopbackGuard {
  /** "host:port" of every refused connection and non-loopback request, in order. */
  readonly violations: string[];
  /** Stop guarding now (teardown does it too). */
  release(): void;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

interface Target { host?: string; port?: number | string; path?: string }

/** The target of a Socket#connect call: (options[, cb]), (port[, host][, cb]), (path[, cb]) or Node's normalized [options, cb]. */
function targetOf(args: unknown[]): Target {
  let first = args[0];
  if (Array.isArray(first)) first = first[0];
  if (first && typeof first === 'object') {
    const o = first as { host?: unknown; port?: unknown; path?: unknown };
    return {
      ...(typeof o.host === 'string' ? { host: o.host } : {}),
      ...(typeof o.port === 'number' || typeof o.port === 'string' ? { port: o.port } : {}),
      ...(typeof o.path === 'string' ? { path: o.path } : {}),
    };
  }
  if (typeof first === 'string' && !/^\d+$/.test(first)) return { path: first };
  const host = typeof args[1] === 'string' ? args[1] : undefined;
  return { ...(host ? { host } : {}), ...(first !== undefined ? { port: first as number | string } : {}) };
}

type Listener = (violation: string) => void;
const listeners = new Set<Listener>();
let originalConnect: typeof net.Socket.prototype.connect | undefined;

function onHttpRequest(message: unknown): void {
  const request = (message as { request?: ClientRequest }).request;
  if (!request) return;
  const host = request.host;
  if (host && !isLoopbackHost(host)) for (const l of listeners) l(`http request to ${host}${request.path}`);
}

function install(): void {
  if (originalConnect) return;
  const original = net.Socket.prototype.connect;
  originalConnect = original;
  net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
    const target = targetOf(args);
    if (target.path === undefined) {
      const host = target.host ?? 'localhost';
      if (!isLoopbackHost(host)) {
        const violation = `${host}:${target.port ?? '?'}`;
        for (const l of listeners) l(violation);
        const socket = this;
        process.nextTick(() => socket.destroy(Object.assign(new Error(`loopback guard: connection to ${violation} refused (not loopback)`), { code: 'ELOOPBACKGUARD' })));
        return socket;
      }
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof net.Socket.prototype.connect;
  diagnostics.subscribe('http.client.request.start', onHttpRequest);
}

function uninstall(): void {
  if (!originalConnect || listeners.size > 0) return;
  net.Socket.prototype.connect = originalConnect;
  originalConnect = undefined;
  diagnostics.unsubscribe('http.client.request.start', onHttpRequest);
}

export function guardLoopback(t: GuardTest): LoopbackGuard {
  const violations: string[] = [];
  let active = true;
  const listener: Listener = (v) => {
    violations.push(v);
    t.fail(`loopback guard: the process reached a non-loopback host: ${v}`);
  };
  listeners.add(listener);
  install();
  const release = () => {
    if (!active) return;
    active = false;
    listeners.delete(listener);
    uninstall();
  };
  t.teardown(release);
  return { violations, release };
}
