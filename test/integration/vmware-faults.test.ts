/**
 * The VMware adapter's failure paths against vcsim (test/labs/vcsim): wrong password, TLS mismatch
 * (CA and thumbprint pins), a session lost mid-run, a VM removed behind our back, tasks that fail.
 *
 * Not here, because vcsim 0.24 cannot show them (reference/vmware.md): running tasks with progress
 * and their cancellation, consolidation, paging, concurrent-snapshot conflicts — those are for the
 * vim25 responder (test/labs/vim-responder).
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderError, markerForJob, type Logger, type ProviderErrorKind } from '../../providers/contract.ts';
import { testContext, type TapTest } from '../../providers/conformance/suite.ts';
import { createVmwareProvider } from '../../providers/vmware/index.ts';
import { createVimClient } from '../../providers/vmware/client.ts';
import { waitForTask } from '../../providers/vmware/tasks.ts';
import { toProviderError } from '../../providers/vmware/faults.ts';
import { startVcsim, type VcsimLab } from '../labs/vcsim/lab.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const ctx = () => testContext();
const log = silentLogger();
const root = mkdtempSync(join(tmpdir(), 'snapvisor-vmware-faults-'));
const labA = await startVcsim({ dir: join(root, 'a') });
const labB = await startVcsim({ dir: join(root, 'b') });
t.teardown(async () => {
  await Promise.all([labA.stop(), labB.stop()]);
  rmSync(root, { recursive: true, force: true });
});

const optionsFor = (lab: VcsimLab, extra: Record<string, unknown> = {}) => ({
  url: lab.sdkUrl,
  username: lab.username,
  password: lab.password,
  ca: lab.caPem,
  requestTimeoutSec: 10,
  taskTimeoutSec: 30,
  ...extra,
});

async function rejectsWith(tt: TapTest, p: Promise<unknown>, kind: ProviderErrorKind, what: string): Promise<ProviderError | undefined> {
  try {
    await p;
  } catch (e) {
    tt.ok(e instanceof ProviderError, `${what}: a ProviderError`);
    if (e instanceof ProviderError) {
      tt.equal(e.kind, kind, `${what}: kind ${kind} (${e.message})`);
      return e;
    }
    return undefined;
  }
  tt.fail(`${what}: expected a rejection`);
  return undefined;
}

/** A logger that keeps every line, to see what the adapter said (and that no secret is in it). */
function recordingLogger(lines: string[]): Logger {
  const rec = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  const logger: Logger = { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error'), child: () => logger };
  return logger;
}

/** A TLS server with lab A's own certificate and key that counts the application bytes it receives. */
async function countingServer(dir: string): Promise<{ server: TlsServer; url: string; received: () => number }> {
  let bytes = 0;
  const server = createTlsServer({ cert: readFileSync(join(dir, 'vcsim-cert.pem')), key: readFileSync(join(dir, 'vcsim-key.pem')) }, (socket) => {
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `https://127.0.0.1:${port}/sdk`, received: () => bytes };
}

t.test('wrong password → auth; the password is in no message or log line', async (t) => {
  const lines: string[] = [];
  const secret = 'wrong-pw-7f3a9c';
  const p = createVmwareProvider('vc', optionsFor(labA, { password: secret }), { log: recordingLogger(lines) });
  t.teardown(() => p.close());
  const e = await rejectsWith(t, p.listVms(ctx()), 'auth', 'listVms with a wrong password');
  t.equal(e?.nativeCode, 'InvalidLogin');
  t.notMatch(e?.message ?? '', secret, 'not in the error');
  t.notOk(JSON.stringify(e).includes(secret), 'not in the serialised error');
  const health = await p.check(ctx());
  t.equal(health.reachable, true, 'the server answered');
  t.equal(health.authOk, false, 'check() says the login failed');
  t.notOk(lines.some((l) => l.includes(secret)), 'not in any log line');
});

t.test('TLS: a certificate other than the pinned CA → auth, and no request is sent', async (t) => {
  const wrongCa = createVmwareProvider('vc', optionsFor(labA, { ca: labB.caPem }), { log });
  t.teardown(() => wrongCa.close());
  const e = await rejectsWith(t, wrongCa.listVms(ctx()), 'auth', 'listVms with another CA pinned');
  t.equal(e?.retry, 'final', 'never retried blindly (like a changed host key)');

  const counting = await countingServer(join(root, 'a'));
  t.teardown(() => counting.server.close());
  const p = createVmwareProvider('vc', { ...optionsFor(labA, { ca: labB.caPem }), url: counting.url }, { log });
  t.teardown(() => p.close());
  await rejectsWith(t, p.listVms(ctx()), 'auth', 'listVms against a server whose certificate is not the pinned one');
  t.equal(counting.received(), 0, 'the server received not one byte of the request (no password on the wire)');

  const right = createVmwareProvider('vc', optionsFor(labA), { log });
  t.teardown(() => right.close());
  t.ok((await right.listVms(ctx())).length > 0, 'the right CA pinned works');
});

t.test('TLS: thumbprint pin — the right one works, a wrong one → auth with nothing sent', async (t) => {
  const { ca: _ca, ...noCa } = optionsFor(labA);
  const good = createVmwareProvider('vc', { ...noCa, thumbprint: labA.thumbprint }, { log });
  t.teardown(() => good.close());
  t.ok((await good.listVms(ctx())).length > 0, 'pinned by thumbprint (self-signed certificate, no CA)');

  const counting = await countingServer(join(root, 'a'));
  t.teardown(() => counting.server.close());
  const bad = createVmwareProvider('vc', { ...noCa, url: counting.url, thumbprint: labB.thumbprint }, { log });
  t.teardown(() => bad.close());
  const e = await rejectsWith(t, bad.listVms(ctx()), 'auth', 'a wrong thumbprint');
  t.match(e?.message ?? '', /certificate/);
  t.equal(counting.received(), 0, 'the request was never written');

  const system = createVmwareProvider('vc', noCa, { log });
  t.teardown(() => system.close());
  await rejectsWith(t, system.listVms(ctx()), 'auth', 'no pin: the system CAs do not know the lab certificate');
});

t.test('insecure: true is warned about once', async (t) => {
  const lines: string[] = [];
  const { ca: _ca, ...noCa } = optionsFor(labA);
  const p = createVmwareProvider('vc', { ...noCa, insecure: true }, { log: recordingLogger(lines) });
  t.teardown(() => p.close());
  await p.listVms(ctx());
  await p.listVms(ctx());
  t.equal(lines.filter((l) => l.startsWith('warn') && /verification is disabled/.test(l)).length, 1, 'one warning');
});

t.test('session lost mid-run (vcsim restarted) → the next call logs in again transparently', async (t) => {
  const dir = join(root, 'restart');
  const lab = await startVcsim({ dir });
  t.teardown(() => lab.stop());
  const lines: string[] = [];
  const p = createVmwareProvider('vc', optionsFor(lab), { log: recordingLogger(lines) });
  t.teardown(() => p.close());
  const [vm] = await p.listVms(ctx());
  if (!vm) throw new Error('no VM in the lab');
  const pid = lab.pid;
  await lab.restart();
  t.not(lab.pid, pid, 'a new vcsim process: every session is gone');
  // vcsim answers a PropertyCollector read without a session with a NotAuthenticated missingSet entry
  // per property instead of a fault: taken at face value it would say "no snapshots" — wrong data.
  t.same(await p.listSnapshots(vm.providerVmId, ctx()), [], 'the read succeeded (the fresh inventory has no snapshots)');
  t.equal(lines.filter((l) => /logging in again/.test(l)).length, 1, `a read logged in again, once: ${JSON.stringify(lines)}`);
  const created = await p.createSnapshot(vm.providerVmId, { name: 'after-restart', description: '', mode: 'crash', marker: markerForJob('restart-1') }, ctx());
  t.same((await p.listSnapshots(vm.providerVmId, ctx())).map((s) => s.providerRef), [created.providerRef], 'the snapshot is there, made once');
  t.equal(lines.filter((l) => /logging in again/.test(l)).length, 1, 'no further re-login');
  await lab.restart();
  const afterSecond = await p.createSnapshot(vm.providerVmId, { name: 'after-second-restart', description: '', mode: 'crash', marker: markerForJob('restart-2') }, ctx());
  t.equal(afterSecond.parentRef, null, 'a task call after another restart works too (fresh inventory)');
  t.equal(lines.filter((l) => /logging in again/.test(l)).length, 2, 'one more re-login');
  t.equal(created.name, 'after-restart', 'mutating calls work in the new session');
});

t.test('a VM removed behind our back → not_found everywhere', async (t) => {
  const p = createVmwareProvider('vc', optionsFor(labA), { log });
  t.teardown(() => p.close());
  const vms = await p.listVms(ctx());
  const victim = vms.at(-1);
  if (!victim) throw new Error('no VM in the lab');
  const snap = await p.createSnapshot(victim.providerVmId, { name: 'doomed', description: '', mode: 'crash', marker: markerForJob('doomed-1') }, ctx());

  // Someone else powers it off and deletes it (raw vim25 over node:https, not our client).
  const raw = createVimClient({ url: labA.sdkUrl, username: labA.username, password: labA.password, tls: { kind: 'ca', ca: labA.caPem }, requestTimeoutMs: 10_000, log });
  const vm = { type: 'VirtualMachine', value: victim.providerVmId };
  await waitForTask(raw, await raw.powerOffTask(vm, { signal: AbortSignal.timeout(10_000) }), ctx(), { call: { what: 'power off', mutating: true }, timeoutMs: 10_000 });
  await raw.close();
  await destroyVm(labA, victim.providerVmId);

  t.notOk((await p.listVms(ctx())).some((v) => v.providerVmId === victim.providerVmId), 'gone from the inventory');
  await rejectsWith(t, p.listSnapshots(victim.providerVmId, ctx()), 'not_found', 'listSnapshots');
  await rejectsWith(t, p.createSnapshot(victim.providerVmId, { name: 'x', description: '', mode: 'crash', marker: markerForJob('doomed-2') }, ctx()), 'not_found', 'createSnapshot');
  await rejectsWith(t, p.revertSnapshot(victim.providerVmId, snap.providerRef, ctx()), 'not_found', 'revertSnapshot');
  await rejectsWith(t, p.deleteSnapshot(victim.providerVmId, snap.providerRef, { children: false }, ctx()), 'not_found', 'deleteSnapshot');
  await rejectsWith(t, p.consolidate(victim.providerVmId, ctx()), 'not_found', 'consolidate');
});

t.test('tasks that fail → the task fault mapped like a SOAP fault', async (t) => {
  const client = createVimClient({ url: labA.sdkUrl, username: labA.username, password: labA.password, tls: { kind: 'ca', ca: labA.caPem }, requestTimeoutMs: 10_000, log });
  t.teardown(() => client.close());
  const p = createVmwareProvider('vc', optionsFor(labA), { log });
  t.teardown(() => p.close());
  const vm = (await p.listVms(ctx())).find((v) => v.powerState === 'running');
  if (!vm) throw new Error('no running VM');
  const ref = { type: 'VirtualMachine', value: vm.providerVmId };
  // Powering on a running VM: vcsim fails the task (state error, InvalidPowerState).
  const task = await client.powerOnTask(ref, { signal: AbortSignal.timeout(10_000) });
  const e = await rejectsWith(t, waitForTask(client, task, ctx(), { call: { what: `power on VM ${vm.providerVmId}`, mutating: true }, timeoutMs: 10_000 }), 'conflict', 'a failed task');
  t.equal(e?.nativeCode, 'InvalidPowerState', 'the fault type of info.error');

  // Revert to a snapshot removed meanwhile: found missing before any task runs.
  const s = await p.createSnapshot(vm.providerVmId, { name: 'gone-soon', description: '', mode: 'memory', marker: markerForJob('gone-1') }, ctx());
  await p.deleteSnapshot(vm.providerVmId, s.providerRef, { children: false }, ctx());
  await rejectsWith(t, p.revertSnapshot(vm.providerVmId, s.providerRef, ctx()), 'not_found', 'revert to a removed snapshot');
  // The same through the raw client (no pre-check): the server's fault is mapped too.
  const raw = client.revertToSnapshotTask({ type: 'VirtualMachineSnapshot', value: s.providerRef }, { signal: AbortSignal.timeout(10_000) }).then((task) =>
    waitForTask(client, task, ctx(), { call: { what: 'revert', mutating: true }, timeoutMs: 10_000 }),
  );
  const mapped = raw.catch((err: unknown) => {
    throw toProviderError(err, { what: 'revert', mutating: true });
  });
  await rejectsWith(t, mapped, 'not_found', 'RevertToSnapshot_Task on a removed snapshot');
});

t.test('memory mode on a powered-off VM is refused by the adapter (vcsim would accept it)', async (t) => {
  const p = createVmwareProvider('vc', optionsFor(labA), { log });
  t.teardown(() => p.close());
  const client = createVimClient({ url: labA.sdkUrl, username: labA.username, password: labA.password, tls: { kind: 'ca', ca: labA.caPem }, requestTimeoutMs: 10_000, log });
  t.teardown(() => client.close());
  const vm = (await p.listVms(ctx())).find((v) => v.powerState === 'running' && (v.snapshots ?? []).length === 0);
  if (!vm) throw new Error('no untouched running VM');
  const ref = { type: 'VirtualMachine', value: vm.providerVmId };
  await waitForTask(client, await client.powerOffTask(ref, { signal: AbortSignal.timeout(10_000) }), ctx(), { call: { what: 'power off', mutating: true }, timeoutMs: 10_000 });
  const e = await rejectsWith(t, p.createSnapshot(vm.providerVmId, { name: 'm', description: '', mode: 'memory', marker: markerForJob('mem-off') }, ctx()), 'conflict', 'memory on a powered-off VM');
  t.match(e?.message ?? '', /powered-on/);
  t.same(await p.listSnapshots(vm.providerVmId, ctx()), [], 'nothing was created');
  const offline = await p.createSnapshot(vm.providerVmId, { name: 'o', description: '', mode: 'offline', marker: markerForJob('off-off') }, ctx());
  t.equal(offline.name, 'o', 'offline on a powered-off VM just takes the snapshot');
  t.equal((await p.listVms(ctx())).find((v) => v.providerVmId === vm.providerVmId)?.powerState, 'off', 'and leaves it off');
});

/** Destroy_Task over raw vim25 (not in the adapter's WSDL on purpose: Snapvisor never deletes VMs). */
async function destroyVm(lab: VcsimLab, vmId: string): Promise<void> {
  const x = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const post = (body: string, cookie?: string) =>
    new Promise<{ status: number; body: string; cookie?: string }>((resolve, reject) => {
      const req = httpsRequest(lab.sdkUrl, { method: 'POST', ca: lab.caPem, agent: false, headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/6.7', ...(cookie ? { cookie } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const c = res.headers['set-cookie']?.find((v) => v.startsWith('vmware_soap_session='))?.split(';')[0];
          resolve({ status: res.statusCode ?? 0, body: text, ...(c ? { cookie: c } : {}) });
        });
      });
      req.on('error', reject);
      req.end(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`);
    });
  const login = await post(`<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>${x(lab.username)}</userName><password>${x(lab.password)}</password></Login>`);
  if (!login.cookie) throw new Error(`raw login failed: ${login.body.slice(0, 300)}`);
  const destroyed = await post(`<Destroy_Task xmlns="urn:vim25"><_this type="VirtualMachine">${x(vmId)}</_this></Destroy_Task>`, login.cookie);
  if (destroyed.status !== 200) throw new Error(`Destroy_Task failed: ${destroyed.body.slice(0, 300)}`);
}
