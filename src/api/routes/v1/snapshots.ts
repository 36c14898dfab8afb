import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { submitJob } from '../../jobs.ts';
import { EmptyBody } from '../../schemas/common.ts';
import { Job } from '../../schemas/jobs.ts';
import { DeleteSnapshotQuery, Snapshot, SnapshotParams, WaitQuery } from '../../schemas/snapshots.ts';
import { optionalBody, READ_ONE, WRITE } from './shared.ts';

const snapshots: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.get('/snapshots/:snapshotId', {
    schema: { tags: ['snapshots'], summary: 'One snapshot', params: SnapshotParams, response: { 200: Snapshot, ...READ_ONE } },
  }, async (request) => engine.getSnapshot(request.params.snapshotId));

  app.post('/snapshots/:snapshotId/revert', {
    preValidation: optionalBody,
    schema: {
      tags: ['snapshots'],
      summary: 'Revert the VM to this snapshot (a job)',
      params: SnapshotParams,
      querystring: WaitQuery,
      body: EmptyBody,
      response: { 200: Job, 202: Job, ...WRITE },
    },
  }, async (request, reply) =>
    submitJob(engine, request, reply, { kind: 'snapshot.revert', snapshotId: request.params.snapshotId }, {}, request.query.wait));

  app.delete('/snapshots/:snapshotId', {
    preValidation: optionalBody,
    schema: {
      tags: ['snapshots'],
      summary: 'Delete a snapshot (`?children=true`: with its whole subtree) — a job',
      params: SnapshotParams,
      querystring: DeleteSnapshotQuery,
      body: EmptyBody,
      response: { 200: Job, 202: Job, ...WRITE },
    },
  }, async (request, reply) => {
    const children = request.query.children ?? false;
    return submitJob(engine, request, reply, { kind: 'snapshot.delete', snapshotId: request.params.snapshotId, children }, { children }, request.query.wait);
  });
};

export default snapshots;
