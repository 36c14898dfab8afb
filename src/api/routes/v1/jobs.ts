import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { forbidden } from '../../errors.ts';
import { answerSubmission, jobDto } from '../../jobs.ts';
import { hasScope } from '../../plugins/auth.ts';
import { EmptyBody } from '../../schemas/common.ts';
import { Job, JobListQuery, JobPage, JobParams } from '../../schemas/jobs.ts';
import { WaitQuery } from '../../schemas/snapshots.ts';
import { optionalBody, READ_LIST, READ_ONE, WRITE } from './shared.ts';

const jobs: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.get('/jobs', {
    schema: {
      tags: ['jobs'],
      summary: 'Jobs, newest first, filtered by state, VM, kind or policy',
      querystring: JobListQuery,
      response: { 200: JobPage, ...READ_LIST },
    },
  }, async (request) => {
    const { state, vm, kind, policy, limit, cursor } = request.query;
    const page = await engine.listJobs({
      limit: limit ?? 100,
      ...(state === undefined ? {} : { state }),
      ...(vm === undefined ? {} : { vmId: vm }),
      ...(kind === undefined ? {} : { kind }),
      ...(policy === undefined ? {} : { policyId: policy }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    return { items: page.items.map(jobDto), next: page.next };
  });

  app.get('/jobs/:jobId', {
    schema: { tags: ['jobs'], summary: 'One job: state, progress, result or error', params: JobParams, response: { 200: Job, ...READ_ONE } },
  }, async (request) => jobDto(await engine.getJob(request.params.jobId)));

  app.post('/jobs/:jobId/cancel', {
    preValidation: optionalBody,
    schema: {
      tags: ['jobs'],
      summary: "Cancel a job (queued: at once; running: its operation is aborted). Another principal's job needs admin.",
      params: JobParams,
      body: EmptyBody,
      response: { 200: Job, ...WRITE },
    },
  }, async (request) => {
    const principal = request.principal;
    const job = await engine.getJob(request.params.jobId);
    if (job.requestedBy !== principal?.name && !hasScope(principal, 'admin')) {
      throw forbidden('admin', "cancelling another principal's job needs the 'admin' scope");
    }
    request.auditJobId = job.id;
    return jobDto(await engine.cancelJob(job.id, principal?.name ?? 'anonymous'));
  });

  app.post('/jobs/:jobId/retry', {
    preValidation: optionalBody,
    schema: {
      tags: ['jobs'],
      summary: 'Retry a failed or cancelled job: a new job with the same kind, VM, snapshot and params (202 + Location, or 200 with `?wait=`)',
      description:
        "Submitted like any request: validated again, counted against the token's queue limit, audited. Send `Idempotency-Key` to make the retry itself safe to repeat. " +
        "A queued, running or succeeded job is a 409, and so is a snapshot group's job (retry the group: its new job stays a member). A policy's job stays the policy's.",
      params: JobParams,
      querystring: WaitQuery,
      body: EmptyBody,
      response: { 200: Job, 202: Job, ...WRITE },
    },
  }, async (request, reply) =>
    answerSubmission(engine, request, reply, (meta) => engine.retryJob(request.params.jobId, meta), {}, request.query.wait));
};

export default jobs;
