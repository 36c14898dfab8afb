// The ARM fake, driven through the REAL @azure/identity ClientSecretCredential and the REAL
// @azure/arm-compute ComputeManagementClient (no mocks between the SDK and the fake's HTTPS socket).
import t, { type Test } from 'tap';
import https from 'node:https';
import net from 'node:net';
import { ClientSecretCredential } from '@azure/identity';
import { ComputeManagementClient, type VirtualMachine } from '@azure/arm-compute';
import { RestError } from '@azure/core-rest-pipeline';
import { startArmFake, type ArmFake, type ArmFakeOptions } from './index.ts';
import { guardLoopback, isLoopbackHost } from './loopback-guard.ts';

const LRO = { updateIntervalInMs: 10 };

function clientsFor(fake: ArmFake, secret = fake.clientSecret) {
  const credential = new ClientSecretCredential(fake.tenantId, fake.clientId, secret, {
    authorityHost: fake.authorityHost, disableInstanceDiscovery: true, tlsOptions: { ca: fake.ca },
  });
  const client = new ComputeManagementClient(credential, fake.subscriptionId, {
    endpoint: fake.endpoint, credentials: { scopes: [`${fake.endpoint}/.default`] }, tlsOptions: { ca: fake.ca }, retryOptions: { maxRetries: 0 },
  });
  return { credential, client };
}

async function start(t: Test, options: ArmFakeOptions = {}): Promise<ArmFake> {
  const fake = await startArmFake(options);
  t.teardown(() => fake.close());
  return fake;
}

async function restError(t: Test, p: Promise<unknown>): Promise<RestError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RestError) return e;
    t.fail(`expected a RestError, got ${String(e)}`);
    throw e;
  }
  t.fail('expected the call to fail');
  throw new Error('did not fail');
}

/** The `{error:{code}}` of a RestError's body. */
function armCode(e: RestError): string | undefined {
  return e.code ?? (e.details as { error?: { code?: string } } | undefined)?.error?.code;
}

// Every test below runs with the guard on: nothing may leave loopback.
const rootGuard = guardLoopback(t);

t.test('Entra ID: a token for the right secret, AADSTS7000215 for a wrong one', async (t) => {
  const fake = await start(t, { tokenLifetimeSec: 1800 });
  const { credential } = clientsFor(fake);
  const token = await credential.getToken(`${fake.endpoint}/.default`);
  t.ok(token.token.length > 20);
  t.ok(Math.abs(token.expiresOnTimestamp - (Date.now() + 1800_000)) < 60_000, 'expires_in honoured');
  const wrong = clientsFor(fake, 'not-the-secret').credential;
  await t.rejects(wrong.getToken(`${fake.endpoint}/.default`), /AADSTS7000215/);
  const paths = fake.requests.map((r) => `${r.method} ${r.path.replace(fake.tenantId, '{tenant}')}`);
  t.ok(paths.includes('GET /{tenant}/v2.0/.well-known/openid-configuration'));
  t.ok(paths.includes('POST /{tenant}/oauth2/v2.0/token'));
  t.ok(fake.requests.some((r) => r.path.endsWith('/oauth2/v2.0/token') && r.status === 401));
});

t.test('virtual machines: list with instanceView power state, get, instanceView, unknown RG', async (t) => {
  const fake = await start(t);
  const a = fake.addVm({ resourceGroup: 'RG-One', name: 'web01', dataDisks: 2 });
  fake.addVm({ resourceGroup: 'rg-one', name: 'db01', power: 'deallocated' });
  const { client } = clientsFor(fake);
  const vms: VirtualMachine[] = [];
  for await (const vm of client.virtualMachines.list('rg-one', { expand: 'instanceView' })) vms.push(vm);
  const powerOf = (name: string) => vms.find((v) => v.name === name)?.instanceView?.statuses?.find((s) => s.code?.startsWith('PowerState/'));
  t.equal(powerOf('web01')?.code, 'PowerState/running');
  t.equal(powerOf('web01')?.displayStatus, 'VM running');
  t.equal(powerOf('db01')?.code, 'PowerState/deallocated');
  const web = vms.find((v) => v.name === 'web01')!;
  t.equal(web.storageProfile?.osDisk?.managedDisk?.id, a.osDiskId);
  t.same(web.storageProfile?.dataDisks?.map((d) => [d.lun, d.managedDisk?.id]), [[0, a.dataDiskIds[0]], [1, a.dataDiskIds[1]]]);
  const iv = await client.virtualMachines.instanceView('RG-ONE', 'WEB01');
  t.equal(iv.statuses?.[1]?.code, 'PowerState/running', 'paths match case-insensitively');
  const got = await client.virtualMachines.get('rg-one', 'db01', { expand: 'instanceView' });
  t.equal(got.instanceView?.statuses?.[1]?.code, 'PowerState/deallocated');
  const disk = await client.disks.get('rg-one', a.osDiskId.split('/').pop()!);
  t.equal(disk.managedBy, a.id);
  t.equal(disk.diskState, 'Attached');
  const e = await restError(t, client.virtualMachines.get('nope', 'web01'));
  t.equal(e.statusCode, 404);
  t.equal(armCode(e), 'ResourceGroupNotFound');
  const e2 = await restError(t, client.virtualMachines.get('rg-one', 'ghost'));
  t.equal(armCode(e2), 'ResourceNotFound');
  t.match(e2.message, /The Resource 'Microsoft.Compute\/virtualMachines\/ghost' under resource group 'RG-One' was not found/);
  t.ok(fake.requests.every((r) => !r.path.startsWith('/subscriptions') || r.apiVersion), 'api-version recorded');
});

t.test('snapshots: incremental create with the recorded fields, re-PUT is an update, list, delete', async (t) => {
  const fake = await start(t);
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'vm1', dataDisks: 1 });
  const { client } = clientsFor(fake);
  const body = { location: fake.location, tags: { 'snapvisor:job': 'j1' }, creationData: { createOption: 'Copy', sourceResourceId: vm.osDiskId }, incremental: true };
  const snap = await client.snapshots.beginCreateOrUpdateAndWait('rg', 'snap-1', body, LRO);
  t.equal(snap.provisioningState, 'Succeeded');
  t.equal(snap.incremental, true);
  t.equal(snap.creationData?.sourceResourceId, vm.osDiskId);
  const disk = fake.disks('rg').find((d) => d.id === vm.osDiskId)!;
  t.equal(snap.creationData?.sourceUniqueId, disk.properties.uniqueId);
  t.match(snap.uniqueId, /^[0-9a-f-]{36}$/);
  t.equal(snap.diskSizeBytes, 30 * 1024 ** 3);
  t.ok(snap.timeCreated instanceof Date);
  t.equal(snap.completionPercent, undefined, 'Premium_LRS source: no completionPercent');
  t.same(snap.tags, { 'snapvisor:job': 'j1' });
  const put = fake.requests.find((r) => r.method === 'PUT')!;
  t.equal(put.status, 202);
  t.ok(fake.requests.some((r) => /\/locations\/westeurope\/DiskOperations\//.test(r.path)), 'polled the DiskOperations URL');

  const snap2 = await client.snapshots.beginCreateOrUpdateAndWait('rg', 'snap-2', body, LRO);
  t.equal(snap2.incrementalSnapshotFamilyId, snap.incrementalSnapshotFamilyId, 'same family per source disk');
  const again = await client.snapshots.beginCreateOrUpdateAndWait('rg', 'snap-1', body, LRO);
  t.equal(again.uniqueId, snap.uniqueId, 're-PUT answers with the same snapshot');
  t.equal(fake.snapshots('rg').length, 2, 'no duplicate');

  const listed = [];
  for await (const s of client.snapshots.listByResourceGroup('rg')) listed.push(s.name);
  t.same(listed.sort(), ['snap-1', 'snap-2']);

  await client.snapshots.beginDeleteAndWait('rg', 'snap-1', LRO);
  const e = await restError(t, client.snapshots.get('rg', 'snap-1'));
  t.equal(e.statusCode, 404);
  t.equal(armCode(e), 'ResourceNotFound');
  await client.snapshots.beginDeleteAndWait('rg', 'snap-1', LRO); // already gone: 204, no error

  const missing = await restError(t, client.snapshots.beginCreateOrUpdateAndWait('rg', 'snap-x',
    { ...body, creationData: { createOption: 'Copy', sourceResourceId: vm.osDiskId.replace(/OsDisk[^/]*$/, 'gone') } }, LRO));
  t.equal(missing.statusCode, 404);
  t.equal(armCode(missing), 'NotFound');
});

t.test('Premium SSD v2: completionPercent climbs 0 → 100 over GETs', async (t) => {
  const fake = await start(t, { completionSteps: 3 });
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'v2', sku: 'PremiumV2_LRS', dataDisks: 1 });
  const { client } = clientsFor(fake);
  const created = await client.snapshots.beginCreateOrUpdateAndWait('rg', 's', {
    location: fake.location, creationData: { createOption: 'Copy', sourceResourceId: vm.dataDiskIds[0] }, incremental: true,
  }, LRO);
  const seen: number[] = [created.completionPercent!];
  while (seen[seen.length - 1]! < 100 && seen.length < 10) seen.push((await client.snapshots.get('rg', 's')).completionPercent!);
  t.equal(seen[seen.length - 1], 100);
  t.ok(seen.every((v, i) => i === 0 || v >= seen[i - 1]!), `monotonic: ${seen.join(' → ')}`);
  t.ok(seen.length >= 3);
});

t.test('disk from a snapshot, OS-disk swap refused while running and accepted when deallocated', async (t) => {
  const fake = await start(t);
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'vm1' });
  const { client } = clientsFor(fake);
  const snap = await client.snapshots.beginCreateOrUpdateAndWait('rg', 'os-snap', {
    location: fake.location, creationData: { createOption: 'Copy', sourceResourceId: vm.osDiskId }, incremental: true,
  }, LRO);
  const disk = await client.disks.beginCreateOrUpdateAndWait('rg', 'vm1-restored', {
    location: fake.location, sku: { name: 'Premium_LRS' }, creationData: { createOption: 'Copy', sourceResourceId: snap.id },
  }, LRO);
  t.equal(disk.provisioningState, 'Succeeded');
  t.equal(disk.diskSizeGB, 30);
  t.equal(disk.creationData?.sourceUniqueId, snap.uniqueId);
  t.equal(disk.diskState, 'Unattached');

  const swap = { storageProfile: { osDisk: { createOption: 'Attach' as const, managedDisk: { id: disk.id! } } } };
  const refused = await restError(t, client.virtualMachines.beginUpdateAndWait('rg', 'vm1', swap, LRO));
  t.equal(refused.statusCode, 409);
  t.equal(armCode(refused), 'OperationNotAllowed');
  t.match(refused.message, /not allowed on VM 'vm1' since the VM is running/);
  t.equal((fake.vm(vm.id) as { properties: { storageProfile: { osDisk: { managedDisk: { id: string } } } } }).properties.storageProfile.osDisk.managedDisk.id, vm.osDiskId, 'nothing changed');

  await client.virtualMachines.beginDeallocateAndWait('rg', 'vm1', LRO);
  t.equal((await client.virtualMachines.instanceView('rg', 'vm1')).statuses?.[1]?.code, 'PowerState/deallocated');
  const updated = await client.virtualMachines.beginUpdateAndWait('rg', 'vm1', swap, LRO);
  t.equal(updated.storageProfile?.osDisk?.managedDisk?.id, disk.id);
  t.equal((await client.disks.get('rg', 'vm1-restored')).managedBy, vm.id);
  t.equal((await client.disks.get('rg', vm.osDiskId.split('/').pop()!)).diskState, 'Unattached', 'old OS disk detached');

  // Data disks by lun through a full PUT (get → modify → createOrUpdate), while running.
  await client.virtualMachines.beginStartAndWait('rg', 'vm1', LRO);
  const extra = fake.addDisk({ resourceGroup: 'rg', name: 'extra', sizeGB: 128 });
  const current = await client.virtualMachines.get('rg', 'vm1');
  current.storageProfile!.dataDisks = [{ lun: 3, createOption: 'Attach', managedDisk: { id: extra } }];
  const put = await client.virtualMachines.beginCreateOrUpdateAndWait('rg', 'vm1', current, LRO);
  t.same(put.storageProfile?.dataDisks?.map((d) => [d.lun, d.managedDisk?.id, d.diskSizeGB]), [[3, extra, 128]]);
  await client.virtualMachines.beginPowerOffAndWait('rg', 'vm1', { ...LRO, skipShutdown: true });
  t.equal((await client.virtualMachines.instanceView('rg', 'vm1')).statuses?.[1]?.code, 'PowerState/stopped');
  t.ok(fake.requests.some((r) => r.path.endsWith('/powerOff') && /skipShutdown=true/.test(r.query)));
});

t.test('faults, each as the SDK sees it', async (t) => {
  const fake = await start(t);
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'vm1' });
  const { client } = clientsFor(fake);
  const body = (sourceResourceId: string) => ({ location: fake.location, creationData: { createOption: 'Copy', sourceResourceId }, incremental: true });

  fake.fault({ method: 'PUT', path: /\/snapshots\// }, { status: 429, code: 'SubscriptionRequestsThrottled', message: 'slow down', retryAfterSec: 7 });
  const throttled = await restError(t, client.snapshots.beginCreateOrUpdateAndWait('rg', 'a', body(vm.osDiskId), LRO));
  t.equal(throttled.statusCode, 429);
  t.equal(throttled.response?.headers.get('retry-after'), '7');
  t.equal(armCode(throttled), 'SubscriptionRequestsThrottled');
  t.equal(fake.snapshots().length, 0);

  fake.fault({ method: 'PUT', path: /\/snapshots\/dropped$/ }, { drop: 'after' });
  await t.rejects(client.snapshots.beginCreateOrUpdateAndWait('rg', 'dropped', body(vm.osDiskId), LRO));
  t.same(fake.snapshots().map((s) => s.name), ['dropped'], 'the PUT was applied before the connection dropped');
  t.equal((await client.snapshots.get('rg', 'dropped')).creationData?.sourceResourceId, vm.osDiskId);

  fake.fault({ method: 'PUT', path: /\/snapshots\/never$/ }, { drop: 'before' });
  await t.rejects(client.snapshots.beginCreateOrUpdateAndWait('rg', 'never', body(vm.osDiskId), LRO));
  t.notOk(fake.snapshots().some((s) => s.name === 'never'));

  fake.fault({ method: 'PUT', path: /\/snapshots\/doomed$/ }, { lroFail: { code: 'InternalDiskManagementError', message: 'An internal disk management error occurred.' } });
  await t.rejects(client.snapshots.beginCreateOrUpdateAndWait('rg', 'doomed', body(vm.osDiskId), LRO),
    /The long-running operation has failed.*InternalDiskManagementError/s);
  t.notOk(fake.snapshots().some((s) => s.name === 'doomed'), 'nothing made');

  fake.fault({ method: 'GET', path: /\/snapshots\/dropped$/ }, { delayMs: 150 });
  const t0 = Date.now();
  await client.snapshots.get('rg', 'dropped');
  t.ok(Date.now() - t0 >= 140, 'delayed');

  fake.expireTokens();
  const expired = await restError(t, client.snapshots.get('rg', 'dropped'));
  t.equal(expired.statusCode, 401);
  t.equal(armCode(expired), 'ExpiredAuthenticationToken');
  t.match(expired.message, /The access token expiry UTC time '.+' is earlier than current UTC time '.+'\./);
  // A new credential gets a fresh token that works.
  t.equal((await clientsFor(fake).client.snapshots.get('rg', 'dropped')).name, 'dropped');

  fake.throttle(2, 3);
  const fresh = clientsFor(fake).client;
  for (let i = 0; i < 2; i++) {
    const e = await restError(t, fresh.snapshots.get('rg', 'dropped'));
    t.equal(e.statusCode, 429);
    t.equal(e.response?.headers.get('retry-after'), '3');
  }
  t.equal((await fresh.snapshots.get('rg', 'dropped')).name, 'dropped', 'storm over');
  t.equal(fake.counters.throttled429, 3);
  t.equal(fake.counters.selfCaused429, 0);
});

t.test('the per-disk snapshot rate rule answers 429 and counts it as self-caused', async (t) => {
  const fake = await start(t, { snapshotRate: { max: 3, windowMs: 60_000 } });
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'vm1', dataDisks: 1 });
  const { client } = clientsFor(fake);
  const body = (id: string) => ({ location: fake.location, creationData: { createOption: 'Copy', sourceResourceId: id }, incremental: true });
  for (let i = 0; i < 3; i++) await client.snapshots.beginCreateOrUpdateAndWait('rg', `s${i}`, body(vm.osDiskId), LRO);
  await client.snapshots.beginCreateOrUpdateAndWait('rg', 's0', body(vm.osDiskId), LRO); // a re-PUT is no new create
  const e = await restError(t, client.snapshots.beginCreateOrUpdateAndWait('rg', 's3', body(vm.osDiskId), LRO));
  t.equal(e.statusCode, 429);
  t.equal(armCode(e), 'OperationNotAllowed');
  const retryAfter = Number(e.response?.headers.get('retry-after'));
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  await client.snapshots.beginCreateOrUpdateAndWait('rg', 'other-disk', body(vm.dataDiskIds[0]!), LRO);
  t.same(fake.counters, { throttled429: 1, selfCaused429: 1 });
  const header = fake.requests.filter((r) => r.method === 'PUT' && r.status === 202).length;
  t.equal(header, 5);
});

t.test('loopback guard: refuses and reports non-loopback connections, lets loopback through', async (t) => {
  t.same(rootGuard.violations, [], 'no test above left loopback');
  rootGuard.release(); // the probes below are meant to trip a guard: only the probe guard
  t.ok(isLoopbackHost('127.0.0.1') && isLoopbackHost('127.8.9.10') && isLoopbackHost('::1') && isLoopbackHost('[::1]') && isLoopbackHost('localhost'));
  t.notOk(isLoopbackHost('192.0.2.1') || isLoopbackHost('login.microsoftonline.com') || isLoopbackHost('10.0.0.1'));

  const failures: string[] = [];
  const teardowns: Array<() => void | Promise<void>> = [];
  const probe = guardLoopback({ fail: (m: string) => failures.push(m), teardown: (fn) => teardowns.push(fn) });
  const started = Date.now();
  const httpsError = await new Promise<Error>((resolve) => {
    const req = https.request({ host: '192.0.2.1', port: 443, path: '/x', timeout: 2000 }, () => resolve(new Error('answered')));
    req.on('error', resolve);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
  t.match(httpsError.message, /loopback guard/);
  const netError = await new Promise<Error>((resolve) => {
    const s = net.connect(80, '192.0.2.1');
    s.on('error', resolve);
    s.on('connect', () => resolve(new Error('connected')));
  });
  t.match(netError.message, /loopback guard/);
  t.ok(Date.now() - started < 1000, 'refused at once, no connect timeout');
  t.ok(probe.violations.some((v) => v.startsWith('192.0.2.1:443')));
  t.ok(probe.violations.some((v) => v.startsWith('192.0.2.1:80')));
  t.ok(failures.length >= 2, 'the guarded test was failed');

  const before = probe.violations.length;
  const fake = await start(t);
  fake.addVm({ resourceGroup: 'rg', name: 'vm1' });
  const names = [];
  for await (const v of clientsFor(fake).client.virtualMachines.list('rg')) names.push(v.name);
  t.same(names, ['vm1'], 'MSAL and the SDK reach the fake on loopback');
  t.equal(probe.violations.length, before, 'no violation from loopback traffic');
  for (const fn of teardowns) await fn();
});
