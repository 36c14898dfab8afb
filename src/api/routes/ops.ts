/** Operations: liveness (open), readiness, Prometheus metrics. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Registry } from 'prom-client';
import { Type } from 'typebox';
import type { EngineApi } from '../../engine/api.ts';
import { HttpProblem } from '../errors.ts';
import { sendProblem, toProblem } from '../plugins/problem.ts';
import { NullableBoolean, NullableString, problems } from '../schemas/common.ts';

const Health = Type.Object({ status: Type.Literal('ok') });

const ReadyReport = Type.Object({
  ready: Type.Boolean(),
  store: Type.Boolean(),
  readiness: Type.Union([Type.Literal('all'), Type.Literal('any')]),
  reason: NullableString(),
  replica: Type.Object({
    id: Type.String({ description: "This replica's id, new at every start" }),
    shared: Type.Boolean({ description: 'Several replicas share the store (PostgreSQL)' }),
    leader: Type.Boolean({ description: 'This replica runs the scheduler, the periodic sync and retention (always, with SQLite)' }),
  }),
  targets: Type.Array(
    Type.Object({
      name: Type.String(),
      healthy: NullableBoolean(),
      message: NullableString(),
      synced: NullableBoolean({ description: "The latest inventory pass read the target's VMs and snapshot trees (null: none has ended yet)" }),
      reason: NullableString({ description: 'Why it did not' }),
    }),
  ),
});

const ops: FastifyPluginAsyncTypebox<{ engine: EngineApi; metrics: Registry[] }> = async (app, { engine, metrics }) => {
  app.get('/healthz', {
    config: { public: true },
    schema: { tags: ['operations'], summary: 'Liveness: the process answers (no authentication)', security: [], response: { 200: Health, ...problems(500) } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    schema: {
      tags: ['operations'],
      summary: "Readiness: the store works and the targets' inventory was read (readiness: all — every target; any — at least one); 503 problem+json naming the targets and why otherwise",
      response: { 200: ReadyReport, ...problems(401, 403, 500, 503) },
    },
  }, async (request, reply) => {
    const report = await engine.ready();
    if (report.ready) return reply.code(200).send(report);
    // problem+json, with the report's fields beside the standard ones.
    const problem = toProblem(new HttpProblem(503, 'not_ready', 'SNAPVISOR_ERR_NOT_READY', 'Service Unavailable', report.reason ?? 'not ready'), request);
    Object.assign(problem.body, { ready: report.ready, store: report.store, readiness: report.readiness, reason: report.reason, replica: report.replica, targets: report.targets });
    return sendProblem(reply, problem);
  });

  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics: jobs by state, provider call latency, errors by kind, HTTP durations, log write errors',
      response: {
        200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: Type.String() } } },
        ...problems(401, 403, 500),
      },
    },
  }, async (_request, reply) => {
    const engineMetrics = await engine.metrics();
    const parts = [engineMetrics.body, await app.httpMetrics.metrics(), await app.authMetrics.metrics(), ...(await Promise.all(metrics.map((r) => r.metrics())))];
    const body = parts.map((p) => p.replace(/\n*$/, '\n')).join('');
    return reply.header('content-type', engineMetrics.contentType).serializer((p: unknown) => String(p)).send(body);
  });
};

export default ops;
