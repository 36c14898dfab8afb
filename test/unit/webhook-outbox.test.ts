/** outboxRowsFor: which engine events become outbox rows, for which webhooks, with what body and key. */
import t from 'tap';
import type { PolicyRun } from '../../src/domain/policy.ts';
import type { Job } from '../../src/domain/types.ts';
import { outboxRowsFor, type WebhookSpec } from '../../src/engine/webhooks.ts';

const NOW = '2026-12-04T16:00:00.000Z';
let n = 0;
const newId = () => `d${++n}`;
const hook = (name: string, events: WebhookSpec['events']): WebhookSpec => ({ name, url: 'http://127.0.0.1:1/', secret: 'x'.repeat(24), events, giveUpAfterDays: 3 });
const hooks = [hook('all', ['job.failed', 'policy.run', 'drift.changed']), hook('jobs', ['job.failed'])];

const job = (state: Job['state']): Job => ({
  id: 'job-1', kind: 'snapshot.create', state, targetId: 't', vmId: 'vm', snapshotId: null, params: { name: 'n', description: '', mode: 'memory' },
  progress: 0, progressMessage: null, attempts: 1, maxAttempts: 1, nextAttemptAt: null, cancelRequested: false, result: null,
  error: state === 'failed' ? { kind: 'invalid', message: 'no' } : null, requestedBy: 'ops', createdAt: NOW, startedAt: NOW, finishedAt: NOW, checkpoint: null, groupId: null, policyId: null, policyRunId: null,
});
const run = (state: PolicyRun['state']): PolicyRun => ({ id: 'run-1', policyId: 'p', kind: 'snapshot', trigger: 'schedule', scheduledFor: NOW, startedAt: NOW, finishedAt: state === 'running' ? null : NOW, state, jobIds: [], message: null });

t.test('a failed job: one row per webhook that wants it, keyed by the job', async (t) => {
  const rows = outboxRowsFor({ type: 'job', job: job('failed') }, hooks, NOW, newId);
  t.same(rows.map((r) => [r.webhook, r.eventType, r.eventKey]), [['all', 'job.failed', 'job.failed:job-1'], ['jobs', 'job.failed', 'job.failed:job-1']]);
  const body = JSON.parse(rows[0]!.body) as Record<string, unknown>;
  t.equal(body.id, rows[0]!.id, 'the body carries its delivery id');
  t.match(body, { type: 'job.failed', occurredAt: NOW, job: { id: 'job-1', state: 'failed', error: { kind: 'invalid' } } });
  t.notOk('params' in (body.job as object), 'no internal fields');
  for (const state of ['queued', 'running', 'succeeded', 'cancelled'] as const) t.same(outboxRowsFor({ type: 'job', job: job(state) }, hooks, NOW, newId), [], `not for ${state}`);
});

t.test('a policy run when it ends (skipped included), not when it starts', async (t) => {
  t.same(outboxRowsFor({ type: 'policy-run', run: run('running') }, hooks, NOW, newId), []);
  for (const state of ['succeeded', 'partial', 'failed', 'skipped'] as const) {
    const rows = outboxRowsFor({ type: 'policy-run', run: run(state) }, hooks, NOW, newId);
    t.same(rows.map((r) => [r.webhook, r.eventKey]), [['all', 'policy.run:run-1']], state);
    t.match(JSON.parse(rows[0]!.body), { type: 'policy.run', run: { id: 'run-1', state } });
  }
});

t.test('a drift change: every change is a delivery (no key)', async (t) => {
  const summary = { createdOutside: 1, deletedOutside: 0, vmsGone: 0, consolidationNeeded: 0, orphans: null };
  const rows = outboxRowsFor({ type: 'drift', target: 'lab', summary }, hooks, NOW, newId);
  t.same(rows.map((r) => [r.webhook, r.eventType, r.eventKey]), [['all', 'drift.changed', null]]);
  t.match(JSON.parse(rows[0]!.body), { type: 'drift.changed', target: 'lab', summary });
});

t.test('other events and no webhooks: nothing', async (t) => {
  t.same(outboxRowsFor({ type: 'job', job: job('failed') }, [], NOW, newId), []);
  t.same(outboxRowsFor({ type: 'target', target: {} as never }, hooks, NOW, newId), []);
});
