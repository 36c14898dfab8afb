/**
 * The Azure adapter under faults, through the real SDK clients against the ARM fake: throttling
 * (never slept on inside the SDK), failed long-running operations, a connection dropped after Azure
 * accepted a PUT, transient 5xx, a partial set completed by a retry, an expired token mid-job, the
 * client secret kept out of every log line and message, and a Premium SSD v2 set that is ready
 * only once every member's completionPercent reaches 100.
 */
import t, { type Test } from 'tap';
import { ProviderError, markerForJob, type CallContext, type Logger, type ProviderSnapshot } from '../../providers/contract.ts';
import { createAzureProvider, type AzureProvider } from '../../providers/azure/index.ts';
import { COMPUTE_API_VERSIONS } from '../../providers/azure/arm.ts';
import { startArmFake, type ArmFake, type ArmFakeOptions, type DiskSku } from '../labs/arm-fake/index.ts';
import { guardLoopback } from '../labs/arm-fake/loopback-guard.ts';

guardLoopback(t);

/** A Logger that keeps every line, as JSON. */
function capturingLogger(lines: string[]): Logger {
  const rec = (level: string) => (obj: object, msg?: string) => void lines.push(JSON.stringify({ level, ...obj, msg }));
  const log: Logger = { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error'), child: () => log };
  return log;
}

interface Lab {
  fake: ArmFake;
  provider: AzureProvider;
  vmId: string;
  lines: string[];
  ctx(firstAttempt?: boolean): CallContext;
}

let jobs = 0;
const spec = (name: string, marker = markerForJob(`faults-${process.pid}-${++jobs}`)) => ({ name, description: 'd', mode: 'crash' as const, marker });

/**
 * `listCacheSec` 0 by default here: these cases are about what each ARM call's failure does, so every
 * call must reach the fake (the listing cache has its own case below).
 */
async function lab(t: Test, o: { dataDisks?: number; sku?: DiskSku; secret?: string; fake?: ArmFakeOptions; listCacheSec?: number } = {}): Promise<Lab> {
  const fake = await startArmFake({ lroPolls: 1, ...o.fake });
  t.teardown(() => fake.close());
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'vm1', power: 'running', dataDisks: o.dataDisks ?? 1, ...(o.sku ? { sku: o.sku } : {}) });
  const lines: string[] = [];
  const log = capturingLogger(lines);
  const provider = createAzureProvider(
    'az',
    {
      subscriptionId: fake.subscriptionId,
      resourceGroups: ['rg'],
      credential: { tenantId: fake.tenantId, clientId: fake.clientId, clientSecret: o.secret ?? fake.clientSecret, authorityHost: fake.authorityHost },
      endpoint: fake.endpoint,
      ca: fake.ca,
      pollIntervalMs: 10,
      listCacheSec: o.listCacheSec ?? 0,
    },
    { log },
  );
  const ctx = (firstAttempt = false): CallContext => ({ signal: new AbortController().signal, progress: () => {}, log, firstAttempt });
  return { fake, provider, vmId: vm.id, lines, ctx };
}

async function failure(t: Test, p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProviderError) return e;
    t.fail(`expected a ProviderError, got ${String(e)}`);
    throw e;
  }
  t.fail('expected a failure');
  throw new Error('did not fail');
}

const snapshotPuts = (fake: ArmFake) => fake.requests.filter((r) => r.method === 'PUT' && /\/snapshots\//i.test(r.path));

t.test('a 429 storm: throttled with retryAfterMs at once, the SDK neither retries nor sleeps', async (t) => {
  const l = await lab(t);
  l.fake.fault({ method: 'PUT', path: /\/snapshots\// }, { status: 429, code: 'SubscriptionRequestsThrottled', message: "Number of 'write' requests for subscription exceeded.", retryAfterSec: 120 }, 100);
  const started = Date.now();
  const e = await failure(t, l.provider.createSnapshot(l.vmId, spec('storm'), l.ctx()));
  t.equal(e.kind, 'throttled');
  t.equal(e.retry, 'transient');
  t.equal(e.retryAfterMs, 120_000, 'Retry-After: 120 → retryAfterMs');
  t.ok(Date.now() - started < 3000, `answered in ${Date.now() - started} ms (no sleep on Retry-After)`);
  t.equal(snapshotPuts(l.fake).length, 2, 'one PUT per disk: no SDK retry');
  t.equal(l.fake.counters.throttled429, 2);
  // Subscription-wide throttling of reads: the same answer from a list.
  l.fake.throttle(3, 7);
  const e2 = await failure(t, l.provider.listSnapshots(l.vmId, l.ctx()));
  t.equal(e2.kind, 'throttled');
  t.equal(e2.retryAfterMs, 7000);
});

t.test('a 409 about the snapshot rate on a snapshot create is throttling; another 409 is a conflict', async (t) => {
  const l = await lab(t, { dataDisks: 0 });
  l.fake.fault({ method: 'PUT', path: /\/snapshots\// }, { status: 409, code: 'OperationNotAllowed', message: 'Too many snapshots of disk vm1_OsDisk: the limit is 7 incremental snapshots per disk every 5 minutes.', retryAfterSec: 60 });
  const e = await failure(t, l.provider.createSnapshot(l.vmId, spec('rate'), l.ctx()));
  t.equal(e.kind, 'throttled');
  t.equal(e.retryAfterMs, 60_000);
  l.fake.fault({ method: 'PUT', path: /\/snapshots\// }, { status: 409, code: 'OperationNotAllowed', message: 'Operation is not allowed since the disk is being detached.' });
  t.equal((await failure(t, l.provider.createSnapshot(l.vmId, spec('busy'), l.ctx()))).kind, 'conflict');
  // The fake's own per-disk rate rule (429 OperationNotAllowed with TooManyRequests details).
  const fast = await lab(t, { dataDisks: 0, fake: { snapshotRate: { max: 2, windowMs: 60_000 } } });
  await fast.provider.createSnapshot(fast.vmId, spec('r1'), fast.ctx());
  await fast.provider.createSnapshot(fast.vmId, spec('r2'), fast.ctx());
  const e3 = await failure(t, fast.provider.createSnapshot(fast.vmId, spec('r3'), fast.ctx()));
  t.equal(e3.kind, 'throttled');
  t.ok((e3.retryAfterMs ?? 0) > 0, `retryAfterMs ${e3.retryAfterMs}`);
  t.equal(fast.fake.counters.selfCaused429, 1);
});

t.test('a long-running operation that fails: its code and message, mapped', async (t) => {
  const l = await lab(t, { dataDisks: 0 });
  l.fake.fault({ method: 'PUT', path: /\/snapshots\// }, { lroFail: { code: 'InternalDiskManagementError', message: 'An internal error occurred in the disk management service.' } });
  const e = await failure(t, l.provider.createSnapshot(l.vmId, spec('lro'), l.ctx()));
  t.equal(e.kind, 'transient');
  t.equal(e.nativeCode, 'InternalDiskManagementError');
  t.match(e.message, /InternalDiskManagementError.*internal error occurred/);
  t.match(e.message, /^\[snapvisor\] \[azure\] target 'az': /);
  l.fake.fault({ method: 'PUT', path: /\/snapshots\// }, { lroFail: { code: 'BadRequest', message: 'The source disk cannot be snapshotted.' } });
  t.equal((await failure(t, l.provider.createSnapshot(l.vmId, spec('lro2'), l.ctx()))).kind, 'invalid');
});

t.test('a connection dropped after Azure accepted the PUT: uncertain; the retry finds the set by tag, one set exists', async (t) => {
  const l = await lab(t);
  l.fake.fault({ method: 'PUT', path: /\/snapshots\/sv-[0-9a-f]+-os$/ }, { drop: 'after' });
  const s = spec('dropped');
  const e = await failure(t, l.provider.createSnapshot(l.vmId, s, l.ctx(true)));
  t.equal(e.kind, 'transient');
  t.equal(e.retry, 'uncertain', 'the PUT may have been applied');
  t.equal(l.fake.snapshots('rg').length, 2, 'both members exist on Azure (the dropped one was applied)');
  let made = await l.provider.createSnapshot(l.vmId, s, l.ctx());
  t.equal(made.marker, s.marker);
  // The dropped PUT's operation was never polled: the member may still be Updating, so the set may
  // answer ready:false and become ready through getSnapshot, as the engine waits for it.
  for (let i = 0; i < 10 && !made.ready; i++) made = await l.provider.getSnapshot(l.vmId, made.providerRef, l.ctx());
  t.equal(made.ready, true);
  const list = await l.provider.listSnapshots(l.vmId, l.ctx());
  t.equal(list.length, 1, 'exactly one set');
  t.equal(l.fake.snapshots('rg').length, 2, 'no duplicate disk snapshot');
  t.same((made.details as { disks: { disk: string }[] }).disks.map((d) => d.disk), ['os', 'lun0']);
  // A drop before the request reached Azure: transient, safe to repeat.
  l.fake.fault({ method: 'GET', path: /virtualMachines\/vm1$/ }, { drop: 'before' });
  const e2 = await failure(t, l.provider.listSnapshots(l.vmId, l.ctx()));
  t.equal(e2.kind, 'transient');
  t.equal(e2.retry, 'transient', 'a read is always safe to repeat');
});

t.test('a transient 500: transient, and the next call works', async (t) => {
  const l = await lab(t);
  l.fake.fault({ method: 'GET', path: /\/snapshots$/ }, { status: 500, code: 'InternalServerError', message: 'Something went wrong.' });
  const e = await failure(t, l.provider.listSnapshots(l.vmId, l.ctx()));
  t.equal(e.kind, 'transient');
  t.equal(e.retry, 'transient');
  t.same(await l.provider.listSnapshots(l.vmId, l.ctx()), []);
  l.fake.fault({ method: 'PUT', path: /\/snapshots\// }, { status: 503, code: 'ServiceUnavailable', message: 'Try later.', retryAfterSec: 1 });
  const e2 = await failure(t, l.provider.createSnapshot(l.vmId, spec('five-oh-three'), l.ctx()));
  t.equal(e2.kind, 'transient');
  t.equal(e2.retry, 'uncertain', 'a 5xx on a PUT may have been applied');
});

t.test('one disk of a 3-disk set fails: a partial, owned set (ready:false); the same marker completes it', async (t) => {
  const l = await lab(t, { dataDisks: 2 });
  l.fake.fault({ method: 'PUT', path: /\/snapshots\/sv-[0-9a-f]+-lun1$/ }, { status: 500, code: 'InternalServerError', message: 'disk lun1 failed' });
  const s = spec('three');
  const e = await failure(t, l.provider.createSnapshot(l.vmId, s, l.ctx(true)));
  t.equal(e.kind, 'transient');
  let list = await l.provider.listSnapshots(l.vmId, l.ctx());
  t.equal(list.length, 1, 'the partial set is listed');
  const partial = list[0]!;
  t.equal(partial.marker, s.marker, 'owned: it carries the marker');
  t.equal(partial.ready, false);
  t.match(partial.details, { partial: true, missing: ['lun1'] });
  t.same((partial.details as { disks: { disk: string }[] }).disks.map((d) => d.disk), ['os', 'lun0']);
  t.ok(l.lines.some((line) => line.includes('snapshot set incomplete')), 'logged');
  const done = await l.provider.createSnapshot(l.vmId, s, l.ctx());
  t.equal(done.providerRef, partial.providerRef, 'the same set');
  t.equal(done.ready, true);
  t.match(done.details, { partial: false, missing: [] });
  list = await l.provider.listSnapshots(l.vmId, l.ctx());
  t.equal(list.length, 1);
  t.equal(l.fake.snapshots('rg').length, 3, 'three disk snapshots, no duplicates');
  t.equal(snapshotPuts(l.fake).filter((r) => r.status === 202).length, 3, 'the retry PUT only the missing member');
  const partialRevert = await lab(t, { dataDisks: 1 });
  partialRevert.fake.fault({ method: 'PUT', path: /-lun0$/ }, { status: 500, code: 'InternalServerError', message: 'x' });
  await failure(t, partialRevert.provider.createSnapshot(partialRevert.vmId, spec('half'), partialRevert.ctx()));
  const half = (await partialRevert.provider.listSnapshots(partialRevert.vmId, partialRevert.ctx()))[0]!;
  t.equal((await failure(t, partialRevert.provider.revertSnapshot(partialRevert.vmId, half.providerRef, partialRevert.ctx()))).kind, 'conflict', 'a partial set is never reverted to');
});

t.test('an expired token mid-job: a fresh credential and client, the call repeated once', async (t) => {
  const l = await lab(t);
  await l.provider.createSnapshot(l.vmId, spec('before'), l.ctx());
  const tokenPosts = () => l.fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/oauth2/v2.0/token')).length;
  t.equal(tokenPosts(), 1);
  t.equal(l.provider.session.credentialsMade, 1);
  l.fake.expireTokens();
  const made = await l.provider.createSnapshot(l.vmId, spec('after'), l.ctx());
  t.equal(made.ready, true, 'the job went on with a new token');
  t.equal(tokenPosts(), 2, 'one new token');
  t.equal(l.provider.session.credentialsMade, 2, 'one new credential (MSAL and the bearer policy both cached the old token)');
  t.ok(l.fake.requests.some((r) => r.status === 401), 'ARM did refuse the old token');
  t.ok(l.lines.some((line) => line.includes('getting a new one')), 'logged');
  // A refusal that a new token cannot fix is auth, not a loop.
  l.fake.fault({ method: 'GET' }, { status: 403, code: 'AuthorizationFailed', message: 'The client does not have authorization to perform action.' }, 5);
  t.equal((await failure(t, l.provider.listSnapshots(l.vmId, l.ctx()))).kind, 'auth');
});

t.test('the client secret is never in a log line, a message or a health answer', async (t) => {
  const secret = 'Sup3r~Secret.Value_0123456789';
  const l = await lab(t, { fake: { clientSecret: secret } });
  const seen: string[] = [];
  const wrong = await lab(t, { secret: `${secret}-wrong` });
  const health = await wrong.provider.check(wrong.ctx());
  t.equal(health.reachable, true);
  t.equal(health.authOk, false, `wrong secret: ${health.message}`);
  t.match(health.message ?? '', /AADSTS7000215|access token/);
  seen.push(health.message ?? '');
  const e = await failure(t, wrong.provider.listSnapshots(wrong.vmId, wrong.ctx()));
  t.equal(e.kind, 'auth');
  seen.push(e.message, JSON.stringify(e), String(e.stack));
  const ok = await l.provider.check(l.ctx());
  t.equal(ok.authOk, true);
  t.match(ok.version ?? '', new RegExp(COMPUTE_API_VERSIONS.virtualMachines));
  l.fake.fault({ method: 'PUT' }, { status: 500, code: 'InternalServerError', message: 'boom' });
  seen.push((await failure(t, l.provider.createSnapshot(l.vmId, spec('x'), l.ctx()))).message);
  l.fake.expireTokens();
  await l.provider.listSnapshots(l.vmId, l.ctx());
  for (const text of [...seen, ...l.lines, ...wrong.lines]) {
    t.notOk(text.includes(secret), `no secret in: ${text.slice(0, 80)}`);
    t.notMatch(text, /Bearer\s+[A-Za-z0-9]/, 'no bearer token');
  }
  t.ok(l.fake.requests.filter((r) => r.path.startsWith('/subscriptions') && r.apiVersion).every((r) => Object.values(COMPUTE_API_VERSIONS).includes(r.apiVersion as never)), 'the api-versions check() reports are the ones sent');
});

t.test('Premium SSD v2: the set is ready only when every member reaches completionPercent 100', async (t) => {
  const l = await lab(t, { sku: 'PremiumV2_LRS', fake: { completionSteps: 4 } });
  const made = await l.provider.createSnapshot(l.vmId, spec('v2'), l.ctx());
  t.equal(made.ready, false, 'still copying');
  t.ok(made.progress !== undefined && made.progress < 100, `progress ${made.progress}`);
  const seen: number[] = [];
  let now: ProviderSnapshot = made;
  for (let i = 0; i < 20 && !now.ready; i++) {
    now = await l.provider.getSnapshot(l.vmId, made.providerRef, l.ctx());
    if (now.progress !== undefined) seen.push(now.progress);
  }
  t.equal(now.ready, true, `ready after ${seen.length} polls: ${seen.join(', ')}`);
  t.ok(seen.every((p, i) => i === 0 || p >= seen[i - 1]!), 'progress never goes back');
  const members = (now.details as { disks: { completionPercent?: number; incremental: boolean; incrementalSnapshotFamilyId: string | null }[] }).disks;
  t.ok(members.every((m) => m.completionPercent === 100 && m.incremental && m.incrementalSnapshotFamilyId), 'each member: 100 %, incremental, its family');
  t.equal((await l.provider.listSnapshots(l.vmId, l.ctx()))[0]?.ready, true, 'listed ready');
});

t.test('the listing cache: a burst of creates lists the group once and sees its own sets at once; a failed write makes it list again', async (t) => {
  // A TTL far longer than the test: nothing here depends on timing (the TTL itself: test/unit/azure-listing-cache.test.ts).
  const l = await lab(t, { listCacheSec: 600 });
  const lists = () => l.fake.requests.filter((r) => r.method === 'GET' && /\/snapshots$/.test(r.path)).length;
  const made: ProviderSnapshot[] = [];
  for (let i = 0; i < 5; i++) made.push(await l.provider.createSnapshot(l.vmId, spec(`burst-${i}`), l.ctx(true)));
  t.equal(lists(), 1, 'five creates, one listing of the group');
  const list = await l.provider.listSnapshots(l.vmId, l.ctx());
  t.equal(list.length, 5, 'every set made here is listed at once');
  for (let i = 1; i < 5; i++) t.equal(list.find((s) => s.providerRef === made[i]!.providerRef)?.parentRef, made[i - 1]!.providerRef, `set ${i}'s parent is set ${i - 1}`);
  t.equal(list.filter((s) => s.current).map((s) => s.providerRef).join(), made[4]!.providerRef, 'the newest is current');
  // Made outside Snapvisor: not seen while the kept listing is young.
  const osDisk = l.fake.disks('rg').find((d) => /OsDisk/.test(String(d.name)))!;
  l.fake.addSnapshot({ diskId: String(osDisk.id), name: 'by-hand' });
  t.equal((await l.provider.listSnapshots(l.vmId, l.ctx())).length, 5, 'the kept listing is used');
  // A write whose answer never came: the next call lists again, finds what it did and what others did.
  const before = lists();
  l.fake.fault({ method: 'PUT', path: /\/snapshots\/sv-[0-9a-f]+-os$/ }, { drop: 'after' });
  const s = spec('dropped');
  await failure(t, l.provider.createSnapshot(l.vmId, s, l.ctx(true)));
  await l.provider.createSnapshot(l.vmId, s, l.ctx());
  t.ok(lists() > before, 'listed again after the dropped write');
  const after = await l.provider.listSnapshots(l.vmId, l.ctx());
  t.equal(after.filter((x) => x.marker === s.marker).length, 1, 'one set for the marker');
  t.equal(after.length, 7, 'six sets and the outside snapshot, seen once listed again');
  t.equal(l.fake.snapshots('rg').filter((x) => String(x.name).startsWith(`sv-`)).length, 12, 'six sets of two, no duplicate');
});
