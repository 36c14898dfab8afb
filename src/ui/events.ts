/**
 * One live connection to /v1/events per signed-in tab, shared by every view. Read with fetch (so
 * the token travels as a header) and reconnected with the server's retry delay, growing while the
 * daemon stays away. Views subscribe by event type; `status` tells them whether they are live, so
 * a view can say "reconnecting" rather than show stale numbers as current; after a gap every loaded
 * resource is read again (onResync), since the stream does not replay what was missed.
 */
import { session } from './session.ts';
import { SseParser } from './sse-parser.ts';
import type { Job, PolicyRun, Snapshot, Vm } from './types.ts';

export type LiveEvent =
  | { type: 'job'; job: Job }
  | { type: 'snapshot'; action: string; snapshot: Snapshot }
  | { type: 'vm'; action: string; vm: Vm }
  | { type: 'target'; target: unknown }
  | { type: 'policy-run'; run: PolicyRun }
  | { type: 'drift'; drift: unknown };

export type LiveStatus = 'connecting' | 'live' | 'reconnecting';
type Listener = (event: LiveEvent) => void;

const listeners = new Set<Listener>();
const statusListeners = new Set<(s: LiveStatus) => void>();
let status: LiveStatus = 'connecting';
let controller: AbortController | null = null;

const resyncListeners = new Set<() => void>();

function setStatus(next: LiveStatus) {
  const back = status === 'reconnecting' && next === 'live';
  status = next;
  for (const l of statusListeners) l(next);
  // The stream has no replay: what changed while it was down is read again, or views would show
  // a job as running that ended while the daemon restarted.
  if (back) for (const l of resyncListeners) l();
}

function toEvent(type: string, data: unknown): LiveEvent | null {
  const d = data as Record<string, unknown>;
  switch (type) {
    case 'job':
      return { type, job: d as unknown as Job };
    case 'snapshot':
      return { type, action: String(d.action), snapshot: d.snapshot as Snapshot };
    case 'vm':
      return { type, action: String(d.action), vm: d.vm as Vm };
    case 'target':
      return { type, target: d };
    case 'policy-run':
      return { type, run: d as unknown as PolicyRun };
    case 'drift':
      return { type, drift: d };
    default:
      return null;
  }
}

async function run(signal: AbortSignal) {
  let delay = 1000;
  while (!signal.aborted) {
    const token = session.token();
    if (token === null) return;
    const parser = new SseParser();
    try {
      const res = await fetch('/v1/events', { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal, cache: 'no-store' });
      if (res.status === 401) {
        session.expired('This token was not accepted (401): it is unknown, or was revoked. Sign in again.');
        return;
      }
      if (!res.ok || res.body === null) throw new Error(`events: ${res.status}`);
      setStatus('live');
      delay = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.push(value)) {
          const event = toEvent(message.event, JSON.parse(message.data));
          if (event) for (const l of listeners) l(event);
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    setStatus('reconnecting');
    await new Promise((resolve) => setTimeout(resolve, Math.max(parser.retryMs ?? 0, delay)));
    delay = Math.min(delay * 2, 30_000);
  }
}

export const live = {
  start() {
    if (controller !== null) return;
    controller = new AbortController();
    setStatus('connecting');
    void run(controller.signal);
  },
  stop() {
    controller?.abort();
    controller = null;
  },
  status: () => status,
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
  onStatus(listener: (s: LiveStatus) => void): () => void {
    statusListeners.add(listener);
    return () => statusListeners.delete(listener);
  },
  /** Called when the stream is back after a gap: reload what the view shows. */
  onResync(listener: () => void): () => void {
    resyncListeners.add(listener);
    return () => resyncListeners.delete(listener);
  },
};
