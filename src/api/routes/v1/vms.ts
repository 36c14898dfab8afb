import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi, SnapshotTree, SnapshotTreeNode } from '../../../engine/api.ts';
import { submitJob } from '../../jobs.ts';
import { checkSnapshotText } from '../../text-rules.ts';
import { createRepresentationCache } from '../../representation-cache.ts';
import { EmptyBody, NotModified } from '../../schemas/common.ts';
import { Job } from '../../schemas/jobs.ts';
import { CreateSnapshotBody, SNAPSHOT_FIELDS, SnapshotListing, SnapshotListQuery, WaitQuery } from '../../schemas/snapshots.ts';
import { ConsolidateBody, Vm, VmListQuery, VmPage, VmParams } from '../../schemas/vms.ts';
import { optionalBody, READ_ONE, WRITE } from './shared.ts';

const vms: FastifyPluginAsyncTypebox<{ engine: EngineApi; listingCacheBytes: number }> = async (app, { engine, listingCacheBytes }) => {
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

  const listings = createRepresentationCache(listingCacheBytes);
  app.get('/vms/:vmId/snapshots', {
    schema: {
      tags: ['snapshots'],
      summary: "A VM's snapshots, flat (`items`) or as a tree (`?view=tree`: `roots`, current marked)",
      description: 'Carries an `ETag` that changes with any of the VM\'s snapshots; `If-None-Match` with it answers 304.',
      params: VmParams,
      querystring: SnapshotListQuery,
      response: { 200: SnapshotListing, 304: NotModified, ...READ_ONE },
    },
  }, async (request, reply) => {
    const { vmId } = request.params;
    const view = request.query.view ?? 'flat';
    const includeGone = request.query.includeGone ?? false;
    const rev = await engine.snapshotRevision(vmId);
    const etag = `"${vmId}.${rev}.${view}${includeGone ? '.all' : ''}"`;
    reply.header('etag', etag).header('cache-control', 'private, no-cache');
    if (request.headers['if-none-match'] === etag) return reply.code(304).send(null);
    let body = listings.get(etag);
    if (body === undefined) {
      if (view === 'tree') {
        const tree = await engine.snapshotTree(vmId);
        body = treeJson(vmId, tree);
      } else {
        body = String(reply.serialize({ vmId, view: 'flat' as const, items: await engine.listSnapshots(vmId, { includeGone }) }));
      }
      listings.set(etag, body);
    }
    return reply.type('application/json; charset=utf-8').send(body);
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
    const { name, description, mode, options } = request.body;
    checkSnapshotText({ name, description });
    return submitJob(
      engine, request, reply,
      { kind: 'snapshot.create', vmId: request.params.vmId, name, description: description ?? '', mode, ...(options ? { options } : {}) },
      { name, description: description ?? '', mode, ...(options ? { options } : {}) },
      request.query.wait,
    );
  });

  app.delete('/vms/:vmId/snapshots', {
    preValidation: optionalBody,
    schema: {
      tags: ['snapshots'],
      summary: 'Remove every snapshot of a VM — a job (the snapshots it has when the job runs)',
      description: "Uses the hypervisor's own remove-all where it has one (vSphere: RemoveAllSnapshots_Task, merged into the disks); elsewhere each root snapshot is deleted with its children. A target that cannot is a 422.",
      params: VmParams,
      querystring: WaitQuery,
      body: EmptyBody,
      response: { 200: Job, 202: Job, ...WRITE },
    },
  }, async (request, reply) => submitJob(engine, request, reply, { kind: 'snapshot.delete-all', vmId: request.params.vmId }, {}, request.query.wait));

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

/**
 * The tree view, serialised by hand: the schema serializer walks a self-referencing schema for
 * every node and costs ten times JSON.stringify on a 200-node tree. Each node is projected onto
 * exactly the schema's fields, so nothing undeclared can leak; api-routes tests check the shape.
 */
function treeJson(vmId: string, tree: SnapshotTree): string {
  const project = (node: SnapshotTreeNode): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const key of SNAPSHOT_FIELDS) out[key] = node[key];
    out.depth = node.depth;
    out.children = node.children.map(project);
    return out;
  };
  return JSON.stringify({ vmId, view: 'tree', currentSnapshotId: tree.currentSnapshotId, maxDepth: tree.maxDepth, roots: tree.roots.map(project) });
}

export default vms;
