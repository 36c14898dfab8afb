/**
 * HTTP request duration histogram in a registry of this app's own (not prom-client's global one,
 * so several apps in one process — tests — do not collide). /metrics appends it to the engine's
 * exposition.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Histogram, Registry } from 'prom-client';

declare module 'fastify' {
  interface FastifyInstance {
    httpMetrics: Registry;
  }
}

async function httpMetricsPlugin(app: FastifyInstance) {
  const registry = new Registry();
  const duration = new Histogram({
    name: 'snapvisor_http_request_duration_seconds',
    help: 'HTTP request duration by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  app.decorate('httpMetrics', registry);
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, not the URL: ids would explode the label cardinality.
    const route = request.routeOptions.url ?? 'unmatched';
    duration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
}

export default fp(httpMetricsPlugin, { name: 'snapvisor-http-metrics', fastify: '5.x' });
