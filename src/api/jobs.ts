/**
 * Turning HTTP requests into engine jobs: the request hash behind Idempotency-Key, the job's
 * public JSON, and the 202/200 answer with `?wait=`.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EngineApi, JobRequest, SubmitMeta, SubmitResult } from '../engine/api.ts';
import { isFinal, type Job } from '../domain/types.ts';
import { HttpProblem } from './errors.ts';

/** The job as the API shows it: no internal scheduling fields. */
export function jobDto(job: Job) {
  return {
    id: job.id,
    kind: job.kind,
    state: job.state,
    progress: job.progress,
    progressMessage: job.progressMessage,
    attempts: job.attempts,
    result: job.result,
    error: job.error,
    vmId: job.vmId,
    snapshotId: job.snapshotId,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    requestedBy: job.requestedBy,
    groupId: job.groupId,
    policyId: job.policyId,
    policyRunId: job.policyRunId,
  };
}
export type JobDto = ReturnType<typeof jobDto>;


/** JSON with object keys sorted at every level, so equal bodies hash equally whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** sha256 of method + path + canonical body: the identity of a request behind an Idempotency-Key. */
export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method.toUpperCase()} ${path}\n${canonicalJson(body ?? {})}`).digest('hex');
}

const KEY = /^[\x21-\x7e]{1,255}$/;

export function idempotencyKey(request: FastifyRequest): string | undefined {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || !KEY.test(value)) {
    throw new HttpProblem(400, 'validation', 'SNAPVISOR_ERR_INVALID_IDEMPOTENCY_KEY', 'Bad Request', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  return value;
}

/**
 * Submits a job and answers: 202 + Location, or — with `?wait=N` — 200 when the job is final
 * within N seconds. A replayed Idempotency-Key gives the first job back, by the same rule.
 * `hashed` is what identifies the request besides method and path (body and meaningful query).
 */
export async function submitJob(
  engine: EngineApi,
  request: FastifyRequest,
  reply: FastifyReply,
  job: JobRequest,
  hashed: unknown,
  waitSeconds: number | undefined,
) {
  return answerSubmission(engine, request, reply, (meta) => engine.submit(job, meta), hashed, waitSeconds);
}

/** As submitJob, for an engine method that submits on its own (a retry): same key, Location and `?wait=` rules. */
export async function answerSubmission(
  engine: EngineApi,
  request: FastifyRequest,
  reply: FastifyReply,
  submit: (meta: SubmitMeta) => Promise<SubmitResult>,
  hashed: unknown,
  waitSeconds: number | undefined,
) {
  const path = request.url.split('?')[0] ?? request.url;
  const key = idempotencyKey(request);
  const { job: submitted, replayed } = await submit({
    principal: request.principal?.name ?? 'anonymous',
    ...(key === undefined ? {} : { idempotencyKey: key }),
    // Only a replay compares it, and only a request with a key can be replayed.
    requestHash: key === undefined ? '' : requestHash(request.method, path, hashed),
  });
  request.auditJobId = submitted.id;
  reply.header('location', `/v1/jobs/${submitted.id}`);
  if (replayed) reply.header('idempotent-replayed', 'true');

  let current = submitted;
  if (waitSeconds !== undefined && waitSeconds > 0 && !isFinal(current)) {
    current = await waitUnlessGone(engine, reply, submitted.id, waitSeconds * 1000);
  }
  const done = waitSeconds !== undefined && isFinal(current);
  return reply.code(done ? 200 : 202).send(jobDto(current));
}

/** Waits for the job, giving up early when the client disconnects. */
async function waitUnlessGone(engine: EngineApi, reply: FastifyReply, jobId: string, timeoutMs: number): Promise<Job> {
  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort();
  };
  reply.raw.once('close', onClose);
  try {
    return await engine.waitForJob(jobId, timeoutMs, controller.signal);
  } catch (err) {
    if (controller.signal.aborted) return engine.getJob(jobId);
    throw err;
  } finally {
    reply.raw.off('close', onClose);
  }
}
