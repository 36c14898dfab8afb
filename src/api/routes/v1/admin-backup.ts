/**
 * POST /v1/admin/backup (admin): an online, consistent copy of the database, sent as the response
 * body. The daemon takes the copy into a file of its own choosing beside the database, checks it,
 * streams it and removes it; the client decides where to keep it. No client-supplied path ever
 * reaches the daemon's filesystem (no path traversal, no overwriting files as the daemon's user),
 * and the backup lands on the operator's machine even when the CLI runs elsewhere.
 */
import { createReadStream } from 'node:fs';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { EngineApi } from '../../../engine/api.ts';
import { EmptyBody, problems } from '../../schemas/common.ts';
import { optionalBody } from './shared.ts';

export const BACKUP_CONTENT_TYPE = 'application/vnd.sqlite3';

const adminBackup: FastifyPluginAsyncTypebox<{ engine: EngineApi }> = async (app, { engine }) => {
  app.post('/admin/backup', {
    config: { scope: 'admin' },
    preValidation: optionalBody,
    schema: {
      tags: ['operations'],
      summary: 'Online backup of the database, as the response body (admin)',
      description:
        'The SQLite database as one consistent state, taken while jobs keep running and integrity-checked before it is sent. ' +
        'Headers: X-Snapvisor-Schema-Version (the migration the copy is at), X-Snapvisor-Backup-Taken-At. ' +
        'Restore it with `snapvisor restore <file>` while the daemon is stopped. On PostgreSQL this is refused (422): use pg_dump.',
      body: EmptyBody,
      response: {
        200: { description: 'The database file', content: { [BACKUP_CONTENT_TYPE]: { schema: Type.String({ format: 'binary' }) } } },
        // 422: the database is PostgreSQL (backed up by its own tools).
        ...problems(400, 401, 403, 415, 422, 500),
      },
    },
  }, async (request, reply) => {
    const backup = await engine.backupDatabase();
    const stream = createReadStream(backup.file);
    // Removed once sent, or when the client goes away mid-way.
    let disposed = false;
    const dispose = () => {
      if (disposed) return;
      disposed = true;
      backup.dispose().catch((err: unknown) => request.log.warn({ err, file: backup.file }, 'could not remove a backup file'));
    };
    stream.on('close', dispose);
    reply.raw.on('close', dispose);
    const stamp = backup.takenAt.replace(/[:.]/g, '-');
    return reply
      .header('content-type', BACKUP_CONTENT_TYPE)
      .header('content-length', String(backup.bytes))
      .header('content-disposition', `attachment; filename="snapvisor-${stamp}.db"`)
      .header('x-snapvisor-schema-version', String(backup.schemaVersion))
      .header('x-snapvisor-backup-taken-at', backup.takenAt)
      .header('cache-control', 'no-store')
      .send(stream);
  });
};

export default adminBackup;
