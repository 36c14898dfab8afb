import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { EmptyBody } from '../../schemas/common.ts';
import { Target, TargetList, TargetParams } from '../../schemas/targets.ts';
import { optionalBody, READ_LIST, READ_ONE, WRITE } from './shared.ts';

const targets: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.get('/targets', {
    schema: {
      tags: ['targets'],
      summary: 'Configured hypervisor endpoints with health and capability matrix',
      response: { 200: TargetList, ...READ_LIST },
    },
  }, async () => ({ items: await engine.listTargets() }));

  app.get('/targets/:target', {
    schema: {
      tags: ['targets'],
      summary: 'One target: health and the modes and operations it supports',
      params: TargetParams,
      response: { 200: Target, ...READ_ONE },
    },
  }, async (request) => engine.getTarget(request.params.target));

  app.post('/targets/:target/sync', {
    config: { scope: 'admin' },
    preValidation: optionalBody,
    schema: {
      tags: ['targets'],
      summary: 'Re-check health and re-read inventory and snapshot trees now (admin)',
      params: TargetParams,
      body: EmptyBody,
      response: { 200: Target, ...WRITE },
    },
  }, async (request) => engine.syncTarget(request.params.target));
};

export default targets;
