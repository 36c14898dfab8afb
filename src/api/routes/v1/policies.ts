import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { EmptyBody } from '../../schemas/common.ts';
import { CreatePolicyBody, KindQuery, PatchPolicyBody, Policy, PolicyList, PolicyParams, PolicyPlan, PolicyRun, PolicyRunPage, PolicyRunParams, RunsQuery } from '../../schemas/policies.ts';
import { optionalBody, READ_LIST, READ_ONE, WRITE } from './shared.ts';

const policies: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.post('/policies', {
    schema: {
      tags: ['policies'],
      summary: 'Create a policy: 201 + Location',
      description: 'A bad cron, an unknown time zone, bad retention or an empty selector is a 400 naming the field; a name in use is a 409.',
      body: CreatePolicyBody,
      response: { 201: Policy, ...WRITE },
    },
  }, async (request, reply) => {
    const policy = await engine.createPolicy(request.body);
    return reply.code(201).header('location', `/v1/policies/${policy.id}`).send(policy);
  });

  app.get('/policies', {
    schema: { tags: ['policies'], summary: 'Every policy, by name', response: { 200: PolicyList, ...READ_LIST } },
  }, async () => ({ items: await engine.listPolicies() }));

  app.get('/policies/:policyId', {
    schema: { tags: ['policies'], summary: 'One policy', params: PolicyParams, response: { 200: Policy, ...READ_ONE } },
  }, async (request) => engine.getPolicy(request.params.policyId));

  app.patch('/policies/:policyId', {
    schema: {
      tags: ['policies'],
      summary: 'Change some fields of a policy (selector and retention are replaced as a whole)',
      params: PolicyParams,
      body: PatchPolicyBody,
      response: { 200: Policy, ...WRITE },
    },
  }, async (request) => engine.updatePolicy(request.params.policyId, request.body));

  app.delete('/policies/:policyId', {
    preValidation: optionalBody,
    schema: {
      tags: ['policies'],
      summary: 'Delete a policy: its runs stay in the history, its snapshots stay (and stay owned by it: no other policy deletes them)',
      params: PolicyParams,
      body: EmptyBody,
      response: { 204: { type: 'null', description: 'Deleted' }, ...WRITE },
    },
  }, async (request, reply) => {
    await engine.deletePolicy(request.params.policyId);
    return reply.code(204).send(null);
  });

  app.get('/policies/:policyId/plan', {
    schema: {
      tags: ['policies'],
      summary: 'What a run now would create, delete and consolidate, step by step (nothing is done)',
      params: PolicyParams,
      querystring: KindQuery,
      response: { 200: PolicyPlan, ...READ_ONE },
    },
  }, async (request) => engine.planPolicy(request.params.policyId, request.query.kind ?? 'snapshot'));

  app.post('/policies/:policyId/run', {
    preValidation: optionalBody,
    schema: {
      tags: ['policies'],
      summary: 'Run a policy now: 202 with the run (Location: the run); its jobs appear in /v1/jobs?policy=',
      description: 'A run of the same policy and kind still going makes this one `skipped`.',
      params: PolicyParams,
      querystring: KindQuery,
      body: EmptyBody,
      response: { 202: PolicyRun, ...WRITE },
    },
  }, async (request, reply) => {
    const run = await engine.runPolicy(request.params.policyId, request.query.kind ?? 'snapshot');
    return reply.code(202).header('location', `/v1/policies/${run.policyId}/runs/${run.id}`).send(run);
  });

  app.get('/policies/:policyId/runs', {
    schema: { tags: ['policies'], summary: "A policy's runs, newest first", params: PolicyParams, querystring: RunsQuery, response: { 200: PolicyRunPage, ...READ_LIST, 404: READ_ONE[404] } },
  }, async (request) => {
    const { limit, cursor } = request.query;
    return engine.listPolicyRuns(request.params.policyId, { limit: limit ?? 100, ...(cursor === undefined ? {} : { cursor }) });
  });

  app.get('/policies/:policyId/runs/:runId', {
    schema: { tags: ['policies'], summary: 'One run of a policy: its state, trigger, slot and job ids', params: PolicyRunParams, response: { 200: PolicyRun, ...READ_ONE } },
  }, async (request) => engine.getPolicyRun(request.params.policyId, request.params.runId));
};

export default policies;
