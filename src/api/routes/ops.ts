/** Operations: liveness (open), readiness, Prometheus metrics. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Registry } from 'prom-client';
import { Type } from 'typebox';
import type { EngineApi } from '../../engine/api.ts';
import { NullableBoolean, NullableString, problems } from '../schemas/common.ts';

const Health = Type.Object({ status: Type.Literal('ok') });

const ReadyReport = Type.Object({
  ready: Type.Boolean(),
  store: Type.Boolean(),
  targets: Type.Array(Type.Object({ name: Type.String(), healthy: NullableBoolean(), message: NullableString() })),
});

const ops: FastifyPluginAsyncTypebox<{ engine: EngineApi; metrics: Registry[] }> = async (app, { engine, metrics }) => {
  app.get('/healthz', {
    config: { public: true },
    schema: { tags: ['operations'], summary: 'Liveness: the process answers (no authentication)', security: [], response: { 200: Health, ...problems(500) } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    schema: {
      tags: ['operations'],
      summary: 'Readiness: store open and targets checked (503 when not ready)',
      response: { 200: ReadyReport, 503: ReadyReport, ...problems(401, 403, 500) },
    },
  }, async (_request, reply) => {
    const report = await engine.ready();
    return reply.code(report.ready ? 200 : 503).send(report);
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
