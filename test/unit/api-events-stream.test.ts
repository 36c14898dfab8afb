/**
 * The SSE route's ends (src/api/routes/v1/events.ts): a stream the server ends because this
 * replica missed other replicas' events (the daemon's close ends it the same way) is detached from
 * every writer first. An event or a heartbeat written after end() is an unhandled 'error' on the
 * response, which ends the process: a replica died that way when PostgreSQL came back.
 * The engine here is the two functions the route uses.
 */
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import t from 'tap';
import events from '../../src/api/routes/v1/events.ts';
import { Problem } from '../../src/api/schemas/common.ts';
import type { EngineApi, EngineEvent } from '../../src/engine/api.ts';

const EVENT = { type: 'drift', target: 'lab', summary: {} } as unknown as EngineEvent;

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

async function setup(t: TapTest) {
  const listeners = new Set<(e: EngineEvent) => void>();
  const missed = new Set<() => void>();
  const engine: Pick<EngineApi, 'subscribe' | 'onEventsMissed'> = {
    subscribe(l) {
      listeners.add(l);
      return () => void listeners.delete(l);
    },
    onEventsMissed(l) {
      missed.add(l);
      return () => void missed.delete(l);
    },
  };
  const app = Fastify();
  app.addSchema(Problem);
  // Heartbeats every 5 ms: one falls between the end and the socket's close if anything does.
  await app.register(events, { engine: engine as EngineApi, heartbeatMs: 5, demo: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => app.close());
  /** Opens the stream; `onOpen` runs once the first bytes arrived; resolves with the whole body at its end. */
  const stream = (onOpen: () => void) =>
    new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: (app.server.address() as AddressInfo).port, path: '/events' }, (res) => {
        let body = '';
        let opened = false;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
          if (!opened) {
            opened = true;
            onOpen();
          }
        });
        res.on('end', () => resolve(body)).on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  return { app, listeners, missed, stream };
}

t.test('missed events end the stream; an event right after is not written (and does not take the process down)', async (t) => {
  const { listeners, missed, stream } = await setup(t);
  const body = await stream(() => {
    for (const m of [...missed]) m();
    for (const l of [...listeners]) l(EVENT);
  });
  t.match(body, /^retry: 3000\n\n/);
  t.notMatch(body, /event: drift/, 'nothing after the end');
  t.equal(listeners.size, 0, 'unsubscribed at the end');
  t.equal(missed.size, 0);
  // A heartbeat's tick after the end would have thrown by now.
  await new Promise((r) => setTimeout(r, 50));
});
