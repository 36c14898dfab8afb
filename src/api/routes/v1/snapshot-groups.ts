import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { GroupActionResult } from '../../../engine/api.ts';
import type { EngineApi } from '../../../engine/api.ts';
import { idempotencyKey, jobDto, requestHash } from '../../jobs.ts';
import { checkSnapshotText } from '../../text-rules.ts';
import { EmptyBody } from '../../schemas/common.ts';
import { CreateGroupBody, GroupAction, GroupListQuery, GroupPage, GroupParams, SnapshotGroup } from '../../schemas/groups.ts';
import { optionalBody, READ_LIST, READ_ONE, WRITE } from './shared.ts';

const location = (groupId: string) => `/v1/snapshot-groups/${groupId}`;

const snapshotGroups: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  const actionReply = (result: GroupActionResult) => ({ group: result.group, jobs: result.jobs.map(jobDto) });

  app.post('/snapshot-groups', {
    schema: {
      tags: ['snapshot-groups'],
      summary: 'Snapshot many VMs across targets in one request: 202 + Location of the group',
      description:
        'Give exactly one of `vms` and `selector`. Every member is checked before anything is stored: an unknown VM is a 404 naming it, a mode a member\'s target cannot do a 422 naming the VM and the reason. Send `Idempotency-Key` to make retries safe.',
      body: CreateGroupBody,
      response: { 202: SnapshotGroup, ...WRITE },
    },
  }, async (request, reply) => {
    const { name, description, mode, vms, selector } = request.body;
    checkSnapshotText({ name, description });
    const key = idempotencyKey(request);
    const path = request.url.split('?')[0] ?? request.url;
    const { group, replayed } = await engine.createSnapshotGroup(
      { name, description: description ?? '', mode, ...(vms === undefined ? {} : { vms }), ...(selector === undefined ? {} : { selector }) },
      {
        principal: request.principal?.name ?? 'anonymous',
        ...(key === undefined ? {} : { idempotencyKey: key }),
        requestHash: key === undefined ? '' : requestHash(request.method, path, request.body),
      },
    );
    request.auditJobId = group.members[0]?.jobId;
    reply.header('location', location(group.id));
    if (replayed) reply.header('idempotent-replayed', 'true');
    return reply.code(202).send(group);
  });

  app.get('/snapshot-groups', {
    schema: { tags: ['snapshot-groups'], summary: 'Snapshot groups, newest first', querystring: GroupListQuery, response: { 200: GroupPage, ...READ_LIST } },
  }, async (request) => {
    const { limit, cursor } = request.query;
    return engine.listSnapshotGroups({ limit: limit ?? 100, ...(cursor === undefined ? {} : { cursor }) });
  });

  app.get('/snapshot-groups/:groupId', {
    schema: {
      tags: ['snapshot-groups'],
      summary: "One group: its state, each member's job, snapshot, start time and error, and the spread of start times",
      params: GroupParams,
      response: { 200: SnapshotGroup, ...READ_ONE },
    },
  }, async (request) => engine.getSnapshotGroup(request.params.groupId));

  const action = (
    method: 'post' | 'delete',
    url: string,
    summary: string,
    run: (groupId: string, principal: string) => Promise<GroupActionResult>,
  ) =>
    app[method](url, {
      preValidation: optionalBody,
      schema: { tags: ['snapshot-groups'], summary, params: GroupParams, body: EmptyBody, response: { 202: GroupAction, ...WRITE } },
    }, async (request, reply) => {
      const { groupId } = request.params as { groupId: string };
      const result = await run(groupId, request.principal?.name ?? 'anonymous');
      request.auditJobId = result.jobs[0]?.id;
      reply.header('location', location(groupId));
      return reply.code(202).send(actionReply(result));
    });

  action('post', '/snapshot-groups/:groupId/retry', 'New create jobs for the failed and cancelled members (409 when there are none)', (id, who) => engine.retrySnapshotGroup(id, who));
  action('post', '/snapshot-groups/:groupId/revert', "Revert every member to its group snapshot (409 unless every member has one)", (id, who) => engine.revertSnapshotGroup(id, who));
  action('delete', '/snapshot-groups/:groupId', 'Delete every snapshot the group made; the group stays, as deleted', (id, who) => engine.deleteSnapshotGroup(id, who));
};

export default snapshotGroups;
