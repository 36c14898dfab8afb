import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { submitJob } from '../../jobs.ts';
import { Job } from '../../schemas/jobs.ts';
import { CreateSnapshotBody, SnapshotListing, SnapshotListQuery, WaitQuery } from '../../schemas/snapshots.ts';
import { ConsolidateBody, Vm, VmListQuery, VmPage, VmParams } from '../../schemas/vms.ts';
import { optionalBody, READ_ONE, WRITE } from './shared.ts';

const vms: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.get('/vms', {
    schema: {
      tags: ['vms'],
      summary: 'VMs with power state, chain depth and whether consolidation is needed',
      querystring: VmListQuery,
      response: { 200: VmPage, ...READ_ONE },
    },
  }, async (request) => {
    const { target, name, includeGone, limit, cursor } = request.query;
    // An unknown target is a 404, not an empty list that looks like "no VMs".
    if (target !== undefined) await engine.getTarget(target);
    return engine.listVms({
      limit: limit ?? 100,
      includeGone: includeGone ?? false,
      ...(target === undefined ? {} : { target }),
      ...(name === undefined ? {} : { name }),
      ...(cursor === undefined ? {} : { cursor }),
    });
  });

  app.get('/vms/:vmId', {
    schema: { tags: ['vms'], summary: 'One VM', params: VmParams, response: { 200: Vm, ...READ_ONE } },
  }, async (request) => engine.getVm(request.params.vmId));

  app.get('/vms/:vmId/snapshots', {
    schema: {
      tags: ['snapshots'],
      summary: "A VM's snapshots, flat (`items`) or as a tree (`?view=tree`: `roots`, current marked)",
      params: VmParams,
      querystring: SnapshotListQuery,
      response: { 200: SnapshotListing, ...READ_ONE },
    },
  }, async (request) => {
    const { vmId } = request.params;
    if (request.query.view === 'tree') {
      const tree = await engine.snapshotTree(vmId);
      return { vmId, view: 'tree' as const, currentSnapshotId: tree.currentSnapshotId, maxDepth: tree.maxDepth, roots: tree.roots };
    }
    const items = await engine.listSnapshots(vmId, { includeGone: request.query.includeGone ?? false });
    return { vmId, view: 'flat' as const, items };
  });

  app.post('/vms/:vmId/snapshots', {
    schema: {
      tags: ['snapshots'],
      summary: 'Take a snapshot: 202 + Location of the job (or 200 with the finished job with `?wait=`)',
      description: 'Send `Idempotency-Key` to make retries safe. A mode the target cannot do is a 422 with the reason.',
      params: VmParams,
      querystring: WaitQuery,
      body: CreateSnapshotBody,
      response: { 200: Job, 202: Job, ...WRITE },
    },
  }, async (request, reply) => {
    const { name, description, mode } = request.body;
    return submitJob(
      engine, request, reply,
      { kind: 'snapshot.create', vmId: request.params.vmId, name, description: description ?? '', mode },
      { name, description: description ?? '', mode },
      request.query.wait,
    );
  });

  app.post('/vms/:vmId/consolidate', {
    preValidation: optionalBody,
    schema: {
      tags: ['vms'],
      summary: "Consolidate a VM's disk chains (a job; `dryRun` only plans)",
      params: VmParams,
      querystring: WaitQuery,
      body: ConsolidateBody,
      response: { 200: Job, 202: Job, ...WRITE },
    },
  }, async (request, reply) => {
    const dryRun = request.body.dryRun ?? false;
    return submitJob(engine, request, reply, { kind: 'vm.consolidate', vmId: request.params.vmId, dryRun }, { dryRun }, request.query.wait);
  });
};

export default vms;
