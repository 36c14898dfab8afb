/**
 * Audit log: every mutating request (POST, PUT, PATCH, DELETE), accepted or refused, is recorded
 * once its response is sent — who, what, the status, the job it created and, when refused, the
 * problem code. A failing audit write is logged, never turned into a failed request.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { EngineApi } from '../../engine/api.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by a route that created (or replayed) a job. */
    auditJobId?: string;
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

async function auditPlugin(app: FastifyInstance, options: { engine: EngineApi }) {
  app.addHook('onResponse', async (request, reply) => {
    if (!MUTATING.has(request.method)) return;
    try {
      await options.engine.audit({
        principal: request.principal?.name ?? 'anonymous',
        method: request.method,
        path: request.url.split('?')[0] ?? request.url,
        statusCode: reply.statusCode,
        jobId: request.auditJobId ?? null,
        detail: request.problemCode ?? null,
      });
    } catch (err) {
      request.log.error({ err }, 'audit write failed');
    }
  });
}

export default fp(auditPlugin, { name: 'snapvisor-audit', fastify: '5.x' });
