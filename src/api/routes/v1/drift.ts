import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { DriftList, DriftQuery } from '../../schemas/drift.ts';
import { READ_ONE } from './shared.ts';

const drift: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.get('/drift', {
    schema: {
      tags: ['targets'],
      summary: 'Drift and orphans per target: snapshots made or deleted outside Snapvisor, VMs gone, chains needing consolidation (read only)',
      querystring: DriftQuery,
      response: { 200: DriftList, ...READ_ONE },
    },
  }, async (request) => ({ items: await engine.drift(request.query.target === undefined ? {} : { target: request.query.target }) }));
};

export default drift;
