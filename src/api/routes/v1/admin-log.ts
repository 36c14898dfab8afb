/**
 * The log level at run time (admin): `PUT /v1/admin/log-level {level}` changes it for every
 * logger of the daemon until the next start (the config file is not rewritten); the answer gives
 * the previous and the new level. A level pino does not know is a 400 problem.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { LogLevel } from '../../../config/schema.ts';
import { AUTH_PROBLEMS, problems } from '../../schemas/common.ts';

/** 'silent': an app built without a logger (embedded, benchmarks) has no level to report. */
export type ReportedLogLevel = LogLevel | 'silent';

export interface LogLevelControl {
  level(): ReportedLogLevel;
  setLevel(level: LogLevel): { previous: ReportedLogLevel; level: LogLevel };
}

const Reported = Type.Union([LogLevel, Type.Literal('silent')], { description: "'silent' when the app was built without a logger" });
const LogLevelBody = Type.Object({ level: LogLevel }, { additionalProperties: false });
const LogLevelChange = Type.Object({ previous: Reported, level: LogLevel });
const CurrentLogLevel = Type.Object({ level: Reported });

const adminLog: FastifyPluginAsyncTypebox<{ control: LogLevelControl }> = async (app, { control }) => {
  app.get('/admin/log-level', {
    config: { scope: 'admin' },
    schema: {
      tags: ['operations'],
      summary: 'The current log level (admin)',
      response: { 200: CurrentLogLevel, ...problems(...AUTH_PROBLEMS) },
    },
  }, async () => ({ level: control.level() }));

  app.put('/admin/log-level', {
    config: { scope: 'admin' },
    schema: {
      tags: ['operations'],
      summary: 'Change the log level of the running daemon until its next start (admin)',
      body: LogLevelBody,
      response: { 200: LogLevelChange, ...problems(400, 413, 415, ...AUTH_PROBLEMS) },
    },
  }, async (request) => {
    const change = control.setLevel(request.body.level);
    // At warn: the change is on record unless the new level is error or fatal.
    request.log.warn({ from: change.previous, to: change.level, principal: request.principal?.name }, 'log level changed');
    return change;
  });
};

export default adminLog;
