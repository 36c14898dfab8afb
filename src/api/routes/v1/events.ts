/**
 * Server-sent events from engine.subscribe: `event: job|snapshot|vm|target` with JSON data, a
 * comment line as heartbeat so proxies keep the stream open, unsubscribed when the client goes.
 * Ended by the server when this replica missed other replicas' events: the client reconnects and reads again.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerResponse } from 'node:http';
import { Type } from 'typebox';
import type { EngineApi, EngineEvent } from '../../../engine/api.ts';
import { jobDto } from '../../jobs.ts';
import { READ_LIST } from './shared.ts';

/** A client this far behind is dropped rather than buffered without limit. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export function formatEvent(event: EngineEvent, id: number): string {
  let data: unknown;
  switch (event.type) {
    case 'job':
      data = jobDto(event.job);
      break;
    case 'snapshot':
      data = { action: event.action, snapshot: event.snapshot };
      break;
    case 'vm':
      data = { action: event.action, vm: event.vm };
      break;
    case 'target':
      data = event.target;
      break;
    case 'policy-run':
      data = event.run;
      break;
    case 'drift':
      data = { target: event.target, summary: event.summary };
      break;
  }
  // JSON.stringify never emits a raw newline, so one data line is always enough.
  return `id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

const events: FastifyPluginAsyncTypebox<{ engine: EngineApi; heartbeatMs: number; demo: boolean }> = async (app, { engine, heartbeatMs, demo }) => {
  /** Each open stream's way to end it (stop writing first, then end). */
  const open = new Map<ServerResponse, () => void>();
  // Streams never end by themselves: close them so app.close() does not wait for clients.
  app.addHook('preClose', async () => {
    for (const finish of [...open.values()]) finish();
  });

  app.get('/events', {
    schema: {
      tags: ['operations'],
      summary: 'Server-sent events: job, snapshot, vm and target changes',
      response: {
        200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: Type.String() } } },
        ...READ_LIST,
      },
    },
  }, async (request, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-request-id': String(request.id),
      ...(demo ? { 'x-snapvisor-demo': 'true' } : {}),
    });
    res.write('retry: 3000\n\n');
    let seq = 0;
    const unsubscribe = engine.subscribe((event) => {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        request.log.warn('event stream client too slow; closing');
        detach();
        res.destroy();
        return;
      }
      res.write(formatEvent(event, ++seq));
    });
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
    heartbeat.unref();
    let offMissed = () => {};
    // Every writer is detached before the end: an event or a heartbeat written after end() (and
    // before 'close') is an 'error' on the response that nobody handles, which ends the process.
    const detach = () => {
      clearInterval(heartbeat);
      offMissed();
      unsubscribe();
      open.delete(res);
    };
    const finish = () => {
      detach();
      if (!res.writableEnded) res.end();
    };
    open.set(res, finish);
    // The stream has no replay: events this replica missed are a gap its client cannot see. Ending
    // the stream makes the client reconnect (after `retry`) and read what it shows again.
    offMissed = engine.onEventsMissed(finish);
    res.once('close', detach);
  });
};

export default events;
