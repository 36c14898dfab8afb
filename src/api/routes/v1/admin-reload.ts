/** POST /v1/admin/reload: re-read the configuration file now, as SIGHUP does (admin). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { EmptyBody, problems } from '../../schemas/common.ts';
import { optionalBody } from './shared.ts';

const Names = Type.Array(Type.String());

export const ReloadReport = Type.Object(
  {
    source: Type.String({ description: 'The configuration file that was read' }),
    targets: Type.Object({
      added: Names,
      changed: Names,
      removed: Names,
      unchanged: Names,
    }),
    tokens: Type.Object({
      count: Type.Integer({ description: 'Tokens configured now' }),
      added: Names,
      changed: Names,
      removed: Names,
    }),
    cancelledJobs: Type.Array(Type.String(), { description: 'Queued jobs of removed targets, cancelled with the reason' }),
    restartRequired: Type.Array(Type.String(), { description: 'Changed keys that take effect only at the next start (e.g. /listen/port)' }),
  },
  { title: 'ReloadReport' },
);
export type ReloadReport = Static<typeof ReloadReport>;

/** The daemon's reload (src/reload.ts): the report, or a SnapvisorError (400 with the keys, 409). */
export type ReloadFn = (principal: string) => Promise<ReloadReport>;

const adminReload: FastifyPluginAsyncTypebox<{ reload: ReloadFn }> = async (app, { reload }) => {
  app.post('/admin/reload', {
    config: { scope: 'admin' },
    preValidation: optionalBody,
    schema: {
      tags: ['operations'],
      summary: 'Re-read the configuration file (targets, tokens) without a restart, as SIGHUP does (admin)',
      description:
        'An invalid file is refused (400, each problem with its key) and the running configuration stays. ' +
        'Running jobs are kept; queued jobs of a removed target are cancelled.',
      body: EmptyBody,
      response: { 200: ReloadReport, ...problems(400, 401, 403, 409, 413, 415, 500) },
    },
  }, async (request) => reload(request.principal?.name ?? 'unknown'));
};

export default adminReload;
