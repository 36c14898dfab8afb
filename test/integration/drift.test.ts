/**
 * Drift against the VirtualBox simulator, through the real API: a snapshot made directly in the
 * simulator shows as created outside after a sync, deleted directly it shows as deleted outside,
 * while Snapvisor's own create and delete never show; the gauge follows, a `drift` event fires when
 * it changes (not when it does not), and a provider without listOrphans says so instead of [].
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { buildApp } from '../../src/api/app.ts';
import type { DriftReport, EngineEvent } from '../../src/engine/api.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';

const READER = 're4der-t0ken-value-8e0c-5e8d0b6a9f3c';
const WRITER = 'wr1ter-t0ken-value-2b9e-5e8d0b6a9f3c';
const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');
const run = promisify(execFile);

t.test('snapshots made and deleted in the simulator show as drift; Snapvisor\'s own do not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-drift-'));
  const lab = createVboxLab({ dir, stepMs: 1, vms: [{ name: 'web01', state: 'running' }, { name: 'db01', state: 'poweroff' }] });
  const log = silentLogger();
  const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 10 }, { log });
  const store = openStore(':memory:');
  const registry = registryOf([{ spec: { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 2, options: {} }, provider }]);
  const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0 } });
  const events: EngineEvent[] = [];
  engine.subscribe((e) => e.type === 'drift' && events.push(e));
  await engine.start();
  const app = await buildApp({
    engine,
    auth: { tokens: [{ name: 'reader', sha256: sha256(READER), scopes: ['read'] }, { name: 'writer', sha256: sha256(WRITER), scopes: ['write'] }] },
    version: '0.0.0-test',
  });
  t.teardown(async () => {
    await app.close();
    await engine.stop({ graceMs: 100 });
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const drift = async (): Promise<DriftReport> => {
    const res = await app.inject({ method: 'GET', url: '/v1/drift?target=lab', headers: { authorization: `Bearer ${READER}` } });
    t.equal(res.statusCode, 200);
    const body = res.json() as { items: DriftReport[] };
    t.equal(body.items.length, 1);
    return body.items[0]!;
  };
  const gauge = async (kind: string) => {
    const line = (await engine.metrics()).body.split('\n').find((l) => l.startsWith(`snapvisor_drift_items{target="lab",kind="${kind}"}`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };
  const web = (await engine.listVms({ limit: 10, name: 'web01' })).items[0]!.id;
  const job = async (request: Parameters<typeof engine.submit>[0], key: string) => {
    const { job } = await engine.submit(request, { principal: 'test', requestHash: key });
    const done = await engine.waitForJob(job.id, 60_000);
    t.equal(done.state, 'succeeded', `${request.kind} succeeded`);
    return done;
  };

  const clean = await drift();
  t.same(
    { createdOutside: clean.createdOutside, deletedOutside: clean.deletedOutside, vmsGone: clean.vmsGone, consolidationNeeded: clean.consolidationNeeded },
    { createdOutside: [], deletedOutside: [], vmsGone: [], consolidationNeeded: [] },
    'nothing drifted at first',
  );
  t.same(clean.orphans, { supported: false, message: 'not supported by this provider', checkedAt: null, items: null }, 'no fake empty orphan list');
  t.equal(clean.summary.orphans, null);
  t.ok(clean.checkedAt, 'checkedAt is the last inventory pass');
  t.equal(await gauge('createdOutside'), 0);
  t.equal(await gauge('orphans'), undefined, 'no orphan series where the provider cannot list them');
  t.equal(events.length, 0, 'no drift event for a target with nothing drifted');

  // Snapvisor's own snapshot is no drift.
  const made = await job({ kind: 'snapshot.create', vmId: web, name: 'ours', description: '', mode: 'memory' }, 'create');
  await engine.syncTarget('lab');
  t.same((await drift()).createdOutside, [], 'a snapshot Snapvisor made is not drift');

  const outsideUuid = lab.addExternalSnapshot('web01', { name: 'made-by-hand' });
  await engine.syncTarget('lab');
  const created = await drift();
  t.equal(created.createdOutside.length, 1);
  t.match(created.createdOutside[0], { name: 'made-by-hand', vmId: web, vmName: 'web01' });
  t.equal(created.summary.createdOutside, 1);
  t.equal(await gauge('createdOutside'), 1, 'the gauge follows after the inventory pass');
  t.equal(events.length, 1, 'one drift event');
  t.match(events[0], { type: 'drift', target: 'lab', summary: { createdOutside: 1, deletedOutside: 0 } });

  await engine.syncTarget('lab');
  t.equal(events.length, 1, 'no event when nothing changed');

  // Deleted in the simulator, not by Snapvisor.
  await run(lab.vboxmanage, ['snapshot', 'web01', 'delete', outsideUuid]);
  await engine.syncTarget('lab');
  const deleted = await drift();
  t.same(deleted.createdOutside, []);
  t.equal(deleted.deletedOutside.length, 1);
  t.match(deleted.deletedOutside[0], { name: 'made-by-hand', vmName: 'web01' });
  t.ok(deleted.deletedOutside[0]!.at, 'when it was seen gone');
  t.equal(await gauge('deletedOutside'), 1);
  t.equal(await gauge('createdOutside'), 0);
  t.equal(events.length, 2);

  // Deleted by a Snapvisor job: still only the one deleted outside.
  await job({ kind: 'snapshot.delete', snapshotId: made.result!.snapshotId!, children: false }, 'delete');
  await engine.syncTarget('lab');
  t.same((await drift()).deletedOutside.map((s) => s.name), ['made-by-hand'], 'a Snapvisor delete is not drift');

  const all = await app.inject({ method: 'GET', url: '/v1/drift', headers: { authorization: `Bearer ${READER}` } });
  t.equal(all.statusCode, 200);
  t.same((all.json() as { items: DriftReport[] }).items.map((d) => d.target), ['lab']);
  const unknown = await app.inject({ method: 'GET', url: '/v1/drift?target=nope', headers: { authorization: `Bearer ${READER}` } });
  t.equal(unknown.statusCode, 404);
  t.match(String(unknown.headers['content-type']), /application\/problem\+json/);
  const anonymous = await app.inject({ method: 'GET', url: '/v1/drift' });
  t.equal(anonymous.statusCode, 401);
  t.notOk(lab.readState().vms.some((v) => v.name === 'web01' && Object.keys(v.snapshots).length !== 0), 'only the jobs and the hand-made change touched the hypervisor');
});
