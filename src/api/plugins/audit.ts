/**
 * Audit log: every mutating request (POST, PUT, PATCH, DELETE), accepted or refused, is recorded
 * once its response is sent — who, what, the status, the job it created and, when refused, the
 * problem code. A failing audit write is logged, never turned into a failed request.
 *
 * Not recorded: a request that failed authentication (401) — anyone can send those, so they must
 * not be able to fill the database; plugins/auth.ts counts them in /metrics instead. The stored
 * path never has the query string and is cut to AUDIT_PATH_MAX characters.
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

/** Longest path stored in an audit row (characters); a longer one is cut and ends with '…'. */
export const AUDIT_PATH_MAX = 512;

/** The path as stored: without the query string (it may carry secrets), at most AUDIT_PATH_MAX characters. */
export function auditPath(url: string): string {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return path.length <= AUDIT_PATH_MAX ? path : `${path.slice(0, AUDIT_PATH_MAX - 1)}…`;
}

async function auditPlugin(app: FastifyInstance, options: { engine: EngineApi }) {
  app.addHook('onResponse', async (request, reply) => {
    if (!MUTATING.has(request.method)) return;
    if (request.authFailure !== null) return;
    try {
      await options.engine.audit({
        principal: request.principal?.name ?? 'anonymous',
        method: request.method,
        path: auditPath(request.url),
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
