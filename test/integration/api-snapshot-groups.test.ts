/**
 * Snapshot groups end to end through the real API and engine, across two providers: the real
 * VirtualBox adapter against the VBoxManage simulator (target 'vbox') and the real KVM adapter
 * against the libvirt/QEMU lab over SSH (target 'kvm'). A group across both, its members and
 * spread; a member failing (simulator fault) → partial, the made snapshots kept; retry completes
 * it; revert and delete of the whole group; refusals (unsupported mode, unknown and duplicate VMs,
 * bad selectors, hostile names) store nothing; Idempotency-Key for the whole request.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { buildApp } from '../../src/api/app.ts';
import type { SnapshotGroup } from '../../src/domain/group.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createKvmLab, LAB_SESSIONS } from '../labs/kvm/lab.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';

const TOKEN = 'group-writer-token-4f1c9a-0123456';
const dir = mkdtempSync(join('/tmp', 'snapvisor-groups-'));
chmodSync(dir, 0o755);
const vboxLab = createVboxLab({ dir: join(dir, 'vbox'), stepMs: 5, vms: [{ name: 'app-a', state: 'poweroff' }, { name: 'app-b', state: 'poweroff' }] });
const kvmLab = await createKvmLab({ dir: join(dir, 'kvm'), domains: [{ name: 'db', running: false }] });
const log = silentLogger();
const vbox = createVirtualBoxProvider('vbox', { vboxmanage: vboxLab.vboxmanage, commandTimeoutSec: 30 }, { log });
const kvm = createKvmProvider('kvm', { uri: kvmLab.uri, ssh: kvmLab.ssh, commandTimeoutSec: 60, sessions: LAB_SESSIONS }, { log });
const store = openStore(':memory:');
const registry = registryOf([
  { spec: { name: 'vbox', kind: 'virtualbox', demo: false, concurrency: 2, options: {} }, provider: vbox },
  { spec: { name: 'kvm', kind: 'kvm', demo: false, concurrency: 2, options: {} }, provider: kvm },
]);
const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 20, maxMs: 50 } } });
await engine.start();
const app = await buildApp({
  engine,
  auth: { tokens: [{ name: 'ops', sha256: createHash('sha256').update(TOKEN).digest('hex'), scopes: ['read', 'write'] }] },
  version: '0.0.0-test',
});
t.teardown(async () => {
  await app.close();
  await engine.stop({ graceMs: 200 });
  store.close();
  await kvm.close();
  await kvmLab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${TOKEN}`, ...headers }, ...(payload === undefined ? {} : { payload: payload as object }) });

const ids = new Map((await engine.listVms({ limit: 100 })).items.map((v) => [v.name, v.id]));
const DB = kvmLab.domainName('db');
const vmId = (name: string) => {
  const id = ids.get(name);
  if (!id) throw new Error(`no VM ${name}`);
  return id;
};

/** The group once no member job is queued or running (waits on the jobs, never on a clock). */
async function settled(groupId: string): Promise<SnapshotGroup> {
  for (;;) {
    const group = (await call('GET', `/v1/snapshot-groups/${groupId}`)).json() as SnapshotGroup;
    if (group.state !== 'running') return group;
    for (const m of group.members) if (m.state === 'queued' || m.state === 'running') await engine.waitForJob(m.jobId, 60_000);
  }
}
async function jobsSettled(jobIds: readonly string[]) {
  for (const id of jobIds) {
    for (;;) {
      const job = await engine.waitForJob(id, 60_000);
      if (['succeeded', 'failed', 'cancelled'].includes(job.state)) break;
    }
  }
  return Promise.all(jobIds.map((id) => engine.getJob(id)));
}
/** What a refused request must not change. */
const stored = async () => ({
  jobs: (await engine.listJobs({ limit: 1000 })).items.length,
  groups: (await engine.listSnapshotGroups({ limit: 1000 })).items.length,
});
const simSnapshots = (vm: string) => Object.values(vboxLab.readState().vms.find((v) => v.name === vm)!.snapshots);
const kvmSnapshots = async () => (await kvmLab.virsh('snapshot-list', DB, '--name')).stdout.split('\n').map((l) => l.trim()).filter(Boolean);

let groupId = '';

t.test('a group across a VirtualBox and a KVM target: 202 + Location, then every member made, with start times and spread', async (t) => {
  const res = await call('POST', '/v1/snapshot-groups', { name: 'release-42', description: 'before the upgrade', mode: 'offline', vms: [vmId('app-a'), vmId('app-b'), vmId(DB)] });
  t.equal(res.statusCode, 202, res.body);
  const created = res.json() as SnapshotGroup;
  groupId = created.id;
  t.equal(res.headers['location'], `/v1/snapshot-groups/${groupId}`);
  t.equal(created.members.length, 3);
  t.same(new Set(created.members.map((m) => m.target)), new Set(['vbox', 'kvm']));
  const jobs = await Promise.all(created.members.map((m) => engine.getJob(m.jobId)));
  t.ok(jobs.every((j) => j.groupId === groupId && j.kind === 'snapshot.create'), 'one create job per VM, each carrying the group id');
  t.equal((await call('GET', `/v1/jobs/${created.members[0]!.jobId}`)).json().groupId, groupId, 'the job shows its group');

  const group = await settled(groupId);
  t.equal(group.state, 'succeeded');
  for (const m of group.members) {
    t.equal(m.state, 'succeeded', `${m.vmName} made its snapshot`);
    t.ok(m.snapshotId, `${m.vmName} names its snapshot`);
    t.ok(m.startedAt, `${m.vmName} records when its job started`);
    t.equal(m.error, null);
  }
  t.same(group.members.map((m) => m.vmName).sort(), ['app-a', 'app-b', DB].sort(), 'members carry the VM names');
  const starts = group.members.map((m) => Date.parse(m.startedAt!));
  t.equal(group.spreadMs, Math.max(...starts) - Math.min(...starts), 'the spread is last start − first start');
  t.ok(group.finishedAt);
  t.equal(simSnapshots('app-a').filter((s) => s.name === 'release-42').length, 1);
  t.same(await kvmSnapshots(), ['release-42'], 'the KVM domain has its snapshot');

  const list = (await call('GET', '/v1/snapshot-groups?limit=10')).json() as { items: SnapshotGroup[] };
  t.equal(list.items[0]!.id, groupId, 'listed');
  const metrics = (await call('GET', '/metrics')).body;
  t.match(metrics, /snapvisor_snapshot_groups_total\{result="succeeded"\} 1/);
  t.match(metrics, /snapvisor_snapshot_group_spread_seconds_count 1/);
});

// Before any other group: a VirtualBox snapshot that is current and has a child cannot be deleted.
t.test('revert and delete of the whole group', async (t) => {
  const reverted = await call('POST', `/v1/snapshot-groups/${groupId}/revert`);
  t.equal(reverted.statusCode, 202, reverted.body);
  const revertJobs = (reverted.json() as { jobs: Array<{ id: string; kind: string; snapshotId: string }> }).jobs;
  t.equal(revertJobs.length, 3);
  t.ok(revertJobs.every((j) => j.kind === 'snapshot.revert'));
  t.ok((await jobsSettled(revertJobs.map((j) => j.id))).every((j) => j.state === 'succeeded'), 'every member reverted');

  const deleted = await call('DELETE', `/v1/snapshot-groups/${groupId}`);
  t.equal(deleted.statusCode, 202, deleted.body);
  const body = deleted.json() as { group: SnapshotGroup; jobs: Array<{ id: string; kind: string }> };
  t.equal(body.group.state, 'deleted');
  t.equal(body.jobs.length, 3);
  t.ok(body.jobs.every((j) => j.kind === 'snapshot.delete'));
  const deletes = await jobsSettled(body.jobs.map((j) => j.id));
  t.ok(deletes.every((j) => j.state === 'succeeded'), `every member snapshot deleted: ${JSON.stringify(deletes.map((j) => j.error))}`);
  const group = (await call('GET', `/v1/snapshot-groups/${groupId}`)).json() as SnapshotGroup;
  t.equal(group.state, 'deleted', 'the record stays, as deleted');
  for (const m of group.members) t.equal((await engine.getSnapshot(m.snapshotId!)).state, 'gone');
  t.equal(simSnapshots('app-a').filter((s) => s.name === 'release-42').length, 0);
  t.notOk((await kvmSnapshots()).includes('release-42'));
  for (const [method, url] of [['POST', `/v1/snapshot-groups/${groupId}/retry`], ['POST', `/v1/snapshot-groups/${groupId}/revert`], ['DELETE', `/v1/snapshot-groups/${groupId}`]] as const) {
    const res = await call(method, url);
    t.equal(res.statusCode, 409, `${method} ${url} on a deleted group`);
  }
});

t.test('a member failing leaves the group partial with the made snapshots kept; retry completes it', async (t) => {
  vboxLab.setFault('take', 'app-b', { type: 'fail', message: 'Failed to take snapshot', code: 'NS_ERROR_FAILURE' });
  const res = await call('POST', '/v1/snapshot-groups', { name: 'nightly', mode: 'offline', vms: [vmId('app-a'), vmId('app-b'), vmId(DB)] });
  t.equal(res.statusCode, 202, res.body);
  const id = (res.json() as SnapshotGroup).id;
  const partial = await settled(id);
  t.equal(partial.state, 'partial');
  const failed = partial.members.find((m) => m.vmName === 'app-b')!;
  t.equal(failed.state, 'failed');
  t.match(failed.error?.message ?? '', /Failed to take snapshot/);
  t.equal(failed.snapshotId, null);
  for (const m of partial.members.filter((m) => m.vmName !== 'app-b')) {
    t.equal(m.state, 'succeeded');
    const snap = await engine.getSnapshot(m.snapshotId!);
    t.equal(snap.state, 'present', `${m.vmName}'s snapshot stays and is listed (nothing orphaned)`);
  }
  t.match((await call('GET', '/metrics')).body, /snapvisor_snapshot_groups_total\{result="partial"\} 1/);
  t.equal((await call('POST', `/v1/snapshot-groups/${id}/revert`)).statusCode, 409, 'revert needs every member to have a snapshot');
  vboxLab.setFault('take', 'app-b', null);
});

t.test('retry makes new create jobs only for the failed members, in the same group', async (t) => {
  vboxLab.setFault('take', 'app-a', { type: 'fail', message: 'Failed to take snapshot', code: 'NS_ERROR_FAILURE' });
  const res = await call('POST', '/v1/snapshot-groups', { name: 'weekly', mode: 'offline', vms: [vmId('app-a'), vmId(DB)] });
  const id = (res.json() as SnapshotGroup).id;
  const partial = await settled(id);
  t.equal(partial.state, 'partial');
  const before = partial.members.find((m) => m.vmName === 'app-a')!;
  const kvmMember = partial.members.find((m) => m.vmName === DB)!;
  vboxLab.setFault('take', 'app-a', null);

  const retried = await call('POST', `/v1/snapshot-groups/${id}/retry`);
  t.equal(retried.statusCode, 202, retried.body);
  const body = retried.json() as { group: SnapshotGroup; jobs: Array<{ id: string; vmId: string; kind: string; groupId: string }> };
  t.equal(body.jobs.length, 1, 'one new job: the failed member only');
  t.equal(body.jobs[0]!.vmId, vmId('app-a'));
  t.equal(body.jobs[0]!.groupId, id);
  t.equal(body.group.state, 'running');
  const done = await settled(id);
  t.equal(done.state, 'succeeded', 'the retry completed the group');
  const after = done.members.find((m) => m.vmName === 'app-a')!;
  t.not(after.jobId, before.jobId, "the member's job is the new one");
  t.ok(after.snapshotId);
  t.equal(done.members.find((m) => m.vmName === DB)!.jobId, kvmMember.jobId, 'the made member was left alone');
  const nothing = await call('POST', `/v1/snapshot-groups/${id}/retry`);
  t.equal(nothing.statusCode, 409, 'nothing left to retry');
  t.equal(nothing.json().code, 'SNAPVISOR_ERR_GROUP_NOTHING_TO_RETRY');
  t.match(String(nothing.headers['content-type']), /application\/problem\+json/);
});

t.test('a mode one member cannot do is refused naming the VM and the reason, and nothing is stored', async (t) => {
  const before = await stored();
  const res = await call('POST', '/v1/snapshot-groups', { name: 'crashy', mode: 'crash', vms: [vmId('app-a'), vmId(DB)] });
  t.equal(res.statusCode, 422, res.body);
  const problem = res.json();
  t.equal(problem.code, 'SNAPVISOR_ERR_MODE_UNSUPPORTED');
  t.match(problem.detail, /VM 'app-a'/);
  t.match(problem.detail, /disk-only snapshot/, "the provider's reason");
  t.notMatch(problem.detail, new RegExp(DB), 'KVM can do it: only the VM that cannot is named');
  t.same(await stored(), before, 'no group, no job');
});

t.test('bad member lists and selectors are 4xx problem+json and store nothing', async (t) => {
  const before = await stored();
  const unknown = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', vms: [vmId('app-a'), 'no-such-vm'] });
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().detail, /no-such-vm/);
  const dup = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', vms: [vmId('app-a'), vmId('app-a')] });
  t.equal(dup.statusCode, 400);
  t.equal(dup.json().code, 'SNAPVISOR_ERR_GROUP_DUPLICATE_VMS');
  const both = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', vms: [vmId('app-a')], selector: { targets: ['vbox'] } });
  t.equal(both.statusCode, 400);
  const neither = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline' });
  t.equal(neither.statusCode, 400);
  const empty = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', selector: {} });
  t.equal(empty.statusCode, 400);
  t.equal(empty.json().code, 'SNAPVISOR_ERR_SELECTOR_EMPTY');
  const noTarget = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', selector: { targets: ['nowhere'] } });
  t.equal(noTarget.statusCode, 404);
  t.match(noTarget.json().detail, /nowhere/);
  const noMatch = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', selector: { namePattern: 'zzz-*' } });
  t.equal(noMatch.statusCode, 400);
  t.equal(noMatch.json().code, 'SNAPVISOR_ERR_GROUP_EMPTY');
  const extra = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'offline', vms: [vmId('app-a')], force: true });
  t.equal(extra.statusCode, 400, 'unknown fields are refused');
  const badMode = await call('POST', '/v1/snapshot-groups', { name: 'x', mode: 'turbo', vms: [vmId('app-a')] });
  t.equal(badMode.statusCode, 400);
  for (const res of [unknown, dup, both, neither, empty, noTarget, noMatch, extra, badMode]) t.match(String(res.headers['content-type']), /application\/problem\+json/);
  t.same(await stored(), before, 'nothing stored');
  t.equal((await call('GET', '/v1/snapshot-groups/..%2F..%2Fetc')).statusCode, 404);
  t.equal((await call('GET', '/v1/snapshot-groups?cursor=%00bad')).statusCode, 400);
});

t.test('a selector picks the VMs: targets and a name glob', async (t) => {
  const res = await call('POST', '/v1/snapshot-groups', { name: 'by-selector', mode: 'offline', selector: { targets: ['vbox'], namePattern: 'app-*' } });
  t.equal(res.statusCode, 202, res.body);
  const group = await settled((res.json() as SnapshotGroup).id);
  t.same(group.members.map((m) => m.vmName).sort(), ['app-a', 'app-b']);
  t.same(group.selector, { targets: ['vbox'], namePattern: 'app-*' });
  t.equal(group.state, 'succeeded');
});

t.test('hostile names: refused by the strictest member target naming it, or kept exactly', async (t) => {
  const before = await stored();
  const control = await call('POST', '/v1/snapshot-groups', { name: 'bell\u0007', mode: 'offline', vms: [vmId('app-a')] });
  t.equal(control.statusCode, 400);
  const numeric = await call('POST', '/v1/snapshot-groups', { name: '42', mode: 'offline', vms: [vmId('app-a'), vmId(DB)] });
  t.equal(numeric.statusCode, 400, 'libvirt would mistake a numeric name for an id');
  t.match(numeric.json().detail, new RegExp(`VM '${DB}'`));
  t.notMatch(numeric.json().detail, /app-a/, 'VirtualBox takes it: only the KVM VM is named');
  const option = await call('POST', '/v1/snapshot-groups', { name: '--help', mode: 'offline', vms: [vmId('app-a'), vmId(DB)] });
  t.equal(option.statusCode, 400);
  t.equal(option.json().members.length, 2, 'both members refused, both listed');
  t.same(await stored(), before, 'nothing stored');

  const slash = await call('POST', '/v1/snapshot-groups', { name: 'a/b', mode: 'offline', vms: [vmId('app-a'), vmId(DB)] });
  t.equal(slash.statusCode, 400, "libvirt refuses '/'");
  t.equal(slash.json().members.length, 1, 'only the KVM member is refused');
  t.same(await stored(), before, 'nothing stored');

  const hostile = `it's "v1"; $(reboot) \`id\` <b>ü<b> 🚀 %s & \\ ..`;
  const res = await call('POST', '/v1/snapshot-groups', { name: hostile, description: 'line one\nline two', mode: 'offline', vms: [vmId('app-a'), vmId(DB)] });
  t.equal(res.statusCode, 202, res.body);
  const group = await settled((res.json() as SnapshotGroup).id);
  t.equal(group.state, 'succeeded');
  t.equal(group.name, hostile);
  t.equal(simSnapshots('app-a').filter((s) => s.name === hostile).length, 1, 'VirtualBox has the name exactly');
  t.ok((await kvmSnapshots()).includes(hostile), 'libvirt has the name exactly');
});

t.test('Idempotency-Key covers the whole request', async (t) => {
  const body = { name: 'idem', mode: 'offline', vms: [vmId('app-a'), vmId(DB)] };
  const first = await call('POST', '/v1/snapshot-groups', body, { 'idempotency-key': 'group-key-1' });
  t.equal(first.statusCode, 202);
  const jobsAfterFirst = (await stored()).jobs;
  const second = await call('POST', '/v1/snapshot-groups', body, { 'idempotency-key': 'group-key-1' });
  t.equal(second.statusCode, 202);
  t.equal(second.headers['idempotent-replayed'], 'true');
  t.equal((second.json() as SnapshotGroup).id, (first.json() as SnapshotGroup).id, 'the same group');
  t.equal((await stored()).jobs, jobsAfterFirst, 'no new jobs');
  const other = await call('POST', '/v1/snapshot-groups', { ...body, name: 'idem-2' }, { 'idempotency-key': 'group-key-1' });
  t.equal(other.statusCode, 422);
  t.equal(other.json().code, 'SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED');
  await settled((first.json() as SnapshotGroup).id);
});
