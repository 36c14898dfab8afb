/**
 * The VMware adapter (providers/vmware) against the vim25 responder (test/labs/vim-responder), for
 * what vcsim 0.24 cannot show (reference/vmware.md, "vcsim 0.24 limits"): consolidation, paging,
 * running tasks with progress and their cancellation, concurrent-snapshot conflicts, the power state
 * a revert leaves, faults and dropped connections at an exact call, and guest shutdown timing for
 * offline snapshots. Everything vcsim can show is tested against vcsim (conformance-vmware,
 * vmware-faults); each case here says what vcsim 0.24 lacks.
 *
 * The adapter is the real one (node-soap over HTTP, plain or TLS with the responder's certificate
 * pinned); nothing of ours is mocked. Tasks are stepped by the test when the adapter polls them
 * (`onRequest`), never by timers, so progress sequences are deterministic and nothing sleeps.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { markerForJob, type CreateSpec, type SnapshotMode } from '../../providers/contract.ts';
import { describeProviderConformance, rejectsWith, testContext, type TapTest } from '../../providers/conformance/suite.ts';
import { createVmwareProvider, type VmwareDeps } from '../../providers/vmware/index.ts';
import { startVimResponder, type RecordedRequest, type VimResponder } from '../labs/vim-responder/server.ts';
import { scenarios, type Scenario } from '../labs/vim-responder/scenario.ts';
import { faults } from '../labs/vim-responder/soap-xml.ts';
import { asList, child, textOf } from '../labs/vim-responder/xml.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const USER = 'snapvisor';
const PASSWORD = 'responder-pw-5c1e';
const log = silentLogger();
const ctx = () => testContext();
let jobs = 0;
const spec = (mode: SnapshotMode, name = `${mode}-snap`): CreateSpec => ({ name, description: `taken in mode ${mode}`, mode, marker: markerForJob(`responder-${process.pid}-${++jobs}`) });

interface Lab {
  r: VimResponder;
  provider: ReturnType<typeof createVmwareProvider>;
  vmId(name: string): string;
}

async function lab(tt: TapTest, scenario: Scenario, options: Record<string, unknown> = {}, deps: Partial<VmwareDeps> = {}): Promise<Lab> {
  const r = await startVimResponder({ username: USER, password: PASSWORD, scenario });
  const provider = createVmwareProvider(
    'responder',
    { url: r.sdkUrl, username: USER, password: PASSWORD, requestTimeoutSec: 10, taskTimeoutSec: 30, ...options },
    { log, pollIntervalMs: 5, ...deps },
  );
  tt.teardown(async () => {
    await provider.close();
    await r.stop();
  });
  const vmId = (name: string): string => {
    const vm = r.model.vms.find((v) => v.name === name);
    if (!vm) throw new Error(`the scenario has no VM ${name}`);
    return vm.ref.value;
  };
  return { r, provider, vmId };
}

/** The object type of a one-object RetrievePropertiesEx (e.g. 'Task' for a task poll), '' for other calls. */
function retrievedType(q: RecordedRequest): string {
  if (q.method !== 'RetrievePropertiesEx') return '';
  // A task poll may carry a second ObjectSpec (the VM's snapshot tree, read in the same call).
  const types = asList(child(asList(child(q.body, 'specSet'))[0], 'objectSet')).map((os) => child(os, 'obj', '@_type'));
  return types.includes('Task') ? 'Task' : typeof types[0] === 'string' ? types[0] : '';
}

/** Each time the adapter polls a task, every manual task moves one step first: the poll sees each step once. */
function stepOnTaskPoll(r: VimResponder): void {
  r.onRequest = (q) => {
    if (retrievedType(q) === 'Task') r.stepTasks();
  };
}

const methods = (r: VimResponder): string[] => r.requests.map((q) => q.method);
const count = (r: VimResponder, method: string): number => methods(r).filter((m) => m === method).length;
const distinct = (values: number[]): number[] => values.filter((v, i) => i === 0 || v !== values[i - 1]);


// ---- 1. consolidation -------------------------------------------------------------------

t.test('consolidation: reported by listVms, ConsolidateVMDisks_Task with progress, then cleared', async (t) => {
  // vcsim 0.24 cannot show this: it has no ConsolidateVMDisks_Task (MethodNotFound) and never sets runtime.consolidationNeeded.
  const { r, provider, vmId } = await lab(t, scenarios.consolidation('manual'));
  const before = await provider.listVms(ctx());
  t.same(
    before.map((v) => [v.name, v.consolidationNeeded]),
    [
      ['vm-needs-consolidation', true],
      ['vm-clean', false],
    ],
    'listVms reports consolidationNeeded per VM',
  );

  stepOnTaskPoll(r);
  const seen: number[] = [];
  const report = await provider.consolidate(vmId('vm-needs-consolidation'), testContext(undefined, (p) => seen.push(p)));
  t.equal(report.merged, 1, report.message);
  t.equal(count(r, 'ConsolidateVMDisks_Task'), 1, 'one ConsolidateVMDisks_Task');
  const task = r.requests.find((q) => q.method === 'ConsolidateVMDisks_Task');
  t.equal(textOf(child(task?.body, '_this')), vmId('vm-needs-consolidation'), 'on the VM that needed it');
  // The task starts running at 0; each poll sees the next step (30, 60, 100), then success.
  t.same(distinct(seen), [30, 60, 100], 'the task progress reached ctx.progress step by step');

  const after = await provider.listVms(ctx());
  t.equal(after.find((v) => v.name === 'vm-needs-consolidation')?.consolidationNeeded, false, 'listVms says false afterwards');

  const tasksBefore = count(r, 'ConsolidateVMDisks_Task');
  const nothing = await provider.consolidate(vmId('vm-clean'), ctx());
  t.equal(nothing.merged, 0, 'nothing merged on a VM that does not need it');
  t.match(nothing.message, /no consolidation needed/, 'says there was nothing to do');
  t.equal(count(r, 'ConsolidateVMDisks_Task'), tasksBefore, 'and never called ConsolidateVMDisks_Task');
});

t.test('a consolidation task that ends in FileLocked → conflict, and the VM still needs it', async (t) => {
  // vcsim 0.24 cannot show this: it has no consolidation at all.
  const scenario = scenarios.consolidation('manual');
  scenario.taskFailures = { ConsolidateVMDisks_Task: faults.fileLocked('[datastore1] vm-needs-consolidation/disk-000001.vmdk') };
  const { r, provider, vmId } = await lab(t, scenario);
  stepOnTaskPoll(r);
  const e = await rejectsWith(t, provider.consolidate(vmId('vm-needs-consolidation'), ctx()), 'conflict', 'consolidate whose task ends in FileLocked');
  t.match(e?.message ?? '', /Unable to access file \[datastore1\] vm-needs-consolidation\/disk-000001\.vmdk since it is locked/, 'with the task error\'s localized message');
  t.equal((await provider.listVms(ctx())).find((v) => v.name === 'vm-needs-consolidation')?.consolidationNeeded, true, 'still needed');
});

// ---- 2. paging --------------------------------------------------------------------------

t.test('paging: more VMs than the page size, all listed with their trees via ContinueRetrievePropertiesEx', async (t) => {
  // vcsim 0.24 cannot show this: it ignores maxObjects, never returns a token and has no ContinueRetrievePropertiesEx.
  const scenario = scenarios.paging(25);
  scenario.vms = scenario.vms.map((vm, i) => (i % 6 === 0 ? { ...vm, snapshots: [{ name: `root-${i}`, children: [{ name: `child-${i}` }] }] } : vm));
  const { r, provider } = await lab(t, scenario, { pageSize: 10 });
  const vms = await provider.listVms(ctx());
  t.same(
    vms.map((v) => v.name).sort(),
    scenario.vms.map((v) => v.name).sort(),
    'every VM is listed once',
  );
  for (const [i, spec] of scenario.vms.entries()) {
    const listed = vms.find((v) => v.name === spec.name);
    const names = (listed?.snapshots ?? []).map((s) => s.name);
    t.same(names, i % 6 === 0 ? [`root-${i}`, `child-${i}`] : [], `${spec.name}: its snapshot tree came along`);
    if (i % 6 === 0) {
      const [root, kid] = listed?.snapshots ?? [];
      t.equal(kid?.parentRef, root?.providerRef, `${spec.name}: the child's parent is the root`);
    }
  }
  const first = r.requests.find((q) => retrievedType(q) === 'ContainerView');
  t.equal(textOf(child(first?.body, 'options', 'maxObjects')), '10', 'the first page asked for maxObjects = pageSize');
  t.equal(count(r, 'ContinueRetrievePropertiesEx'), 2, 'two more pages (10 + 10 + 5) through ContinueRetrievePropertiesEx');
  t.equal(count(r, 'RetrievePropertiesEx'), 1, 'one inventory pass: no per-VM reads');
  t.equal(r.model.pages.size, 0, 'no page left open on the server');
});

t.test('paging: the server pages below the asked size (maxObjectsCap) and listVms still gets everything', async (t) => {
  // vcsim 0.24 cannot show this: it never pages.
  const scenario = { ...scenarios.paging(12), maxObjectsCap: 5 };
  const { r, provider } = await lab(t, scenario);
  t.equal((await provider.listVms(ctx())).length, 12, 'all 12 VMs');
  t.equal(count(r, 'ContinueRetrievePropertiesEx'), 2, 'pages of 5, 5, 2');
});

// ---- 3. running tasks: progress and cancellation -------------------------------------------

t.test('remove all snapshots: one RemoveAllSnapshots_Task (consolidate=true) with progress, then an empty tree', async (t) => {
  // vcsim 0.24 finishes RemoveAllSnapshots_Task inside the call (conformance-vmware runs it there); progress needs the responder.
  const scenario = scenarios.consolidation('manual');
  scenario.tasks = { byMethod: { RemoveAllSnapshots_Task: { progress: [0, 30, 60, 100], stepMs: 'manual' } } };
  const { r, provider, vmId } = await lab(t, scenario);
  const vm = vmId('vm-needs-consolidation');
  await provider.createSnapshot(vm, spec('crash', 'second'), ctx());
  t.equal((await provider.listSnapshots(vm, ctx())).length, 2, 'a chain of two');
  stepOnTaskPoll(r);
  const seen: number[] = [];
  await provider.deleteAllSnapshots!(vm, testContext(undefined, (p) => seen.push(p)));
  t.same(await provider.listSnapshots(vm, ctx()), [], 'no snapshot left');
  t.equal(count(r, 'RemoveAllSnapshots_Task'), 1, 'one task');
  t.equal(count(r, 'RemoveSnapshot_Task'), 0, 'not snapshot by snapshot');
  const sent = r.requests.find((q) => q.method === 'RemoveAllSnapshots_Task');
  t.equal(textOf(child(sent?.body, '_this')), vm, 'on that VM');
  t.equal(textOf(child(sent?.body, 'consolidate')), 'true', 'consolidate=true');
  t.same(distinct(seen), [30, 60, 100], 'the task progress reached ctx.progress');
});

t.test('a slow CreateSnapshot_Task: queued, then running with progress, then done', async (t) => {
  // vcsim 0.24 cannot show this: its tasks finish inside the call, never queued or running with progress.
  const { r, provider, vmId } = await lab(t, scenarios.slowTasks('manual'));
  stepOnTaskPoll(r);
  const seen: number[] = [];
  const snap = await provider.createSnapshot(vmId('slow-vm'), spec('crash', 'slow'), testContext(undefined, (p) => seen.push(p)));
  t.equal(snap.name, 'slow');
  t.same(distinct(seen), [0, 30, 60, 100], 'progress 0 → 30 → 60 → 100 as the polls saw it');
});

t.test('aborting ctx.signal while a task runs sends CancelTask; the call ends transient/uncertain', async (t) => {
  // vcsim 0.24 cannot show this: no running tasks and no CancelTask.
  const { r, provider, vmId } = await lab(t, scenarios.slowTasks('manual'));
  stepOnTaskPoll(r);
  const ac = new AbortController();
  const seen: number[] = [];
  const e = await rejectsWith(
    t,
    provider.createSnapshot(
      vmId('slow-vm'),
      spec('crash', 'to-cancel'),
      testContext(ac.signal, (p) => {
        seen.push(p);
        if (p >= 60) ac.abort();
      }),
    ),
    'transient',
    'createSnapshot aborted mid-task',
  );
  t.equal(e?.retry, 'uncertain', 'retry uncertain: the task may still have completed');
  t.same(distinct(seen), [0, 30, 60], 'progress flowed until the abort');
  const created = r.requests.find((q) => q.method === 'CreateSnapshot_Task');
  const taskRef = [...r.model.tasks.values()].find((x) => x.method === 'CreateSnapshot_Task')?.ref;
  const cancel = r.requests.find((q) => q.method === 'CancelTask');
  t.ok(created, 'the task was started');
  t.ok(cancel, 'CancelTask was sent');
  t.equal(textOf(child(cancel?.body, '_this')), taskRef?.value, 'for the running task');
  const task = taskRef ? r.model.tasks.get(taskRef.value) : undefined;
  t.equal(task?.cancelled, true, 'the server cancelled it');
  t.same(r.model.vms[0]?.roots ?? [], [], 'no snapshot was made');
});

t.test('abort on a task that cannot be cancelled: still transient/uncertain (CancelTask failed, outcome unknown)', async (t) => {
  // vcsim 0.24 cannot show this: no CancelTask, no non-cancelable running tasks.
  const scenario = scenarios.slowTasks('manual');
  scenario.tasks = { byMethod: { CreateSnapshot_Task: { progress: [0, 30, 60, 100], stepMs: 'manual', cancelable: false } } };
  const { r, provider, vmId } = await lab(t, scenario);
  stepOnTaskPoll(r);
  const ac = new AbortController();
  const e = await rejectsWith(
    t,
    provider.createSnapshot(vmId('slow-vm'), spec('crash'), testContext(ac.signal, (p) => p >= 30 && ac.abort())),
    'transient',
    'createSnapshot aborted on a non-cancelable task',
  );
  t.equal(e?.retry, 'uncertain');
  t.equal(count(r, 'CancelTask'), 1, 'CancelTask was tried');
  const task = [...r.model.tasks.values()].find((x) => x.method === 'CreateSnapshot_Task');
  t.equal(task?.state, 'running', 'the task goes on on the server (hence uncertain)');
});

// ---- 4. concurrent snapshot conflicts ------------------------------------------------------

for (const how of ['task-error', 'soap-fault'] as const) {
  t.test(`a snapshot while another task holds the VM: TaskInProgress as a ${how} → conflict`, async (t) => {
    // vcsim 0.24 cannot show this: its tasks finish inside the call, so two never overlap.
    const { r, provider, vmId } = await lab(t, scenarios.conflict(how));
    const vm = r.model.vms[0];
    if (!vm) throw new Error('no VM');
    // Another client's snapshot task, still running on the VM.
    r.model.createSnapshot(vm.ref, 'someone-else', '', false, false);
    const e = await rejectsWith(t, provider.createSnapshot(vmId('busy-vm'), spec('crash'), ctx()), 'conflict', `createSnapshot during another task (${how})`);
    t.equal(e?.nativeCode, 'TaskInProgress');
    t.match(e?.message ?? '', /Another task is already in progress/, 'with the server\'s message');
    t.equal(count(r, 'CreateSnapshot_Task'), 1, 'one attempt, no blind retry');
  });
}

// ---- 5. power effects of revert -------------------------------------------------------------

t.test('revert: to a memory snapshot → poweredOn, to a disk-only one → poweredOff (as listVms shows)', async (t) => {
  // vcsim 0.24 cannot show this: its revert keeps the current power state and records every snapshot of a running VM as poweredOn.
  const { provider, vmId } = await lab(t, scenarios.revertPower());
  const id = vmId('revert-vm');
  const snaps = await provider.listSnapshots(id, ctx());
  const ref = (name: string): string => {
    const s = snaps.find((x) => x.name === name);
    if (!s) throw new Error(`no snapshot ${name}`);
    return s.providerRef;
  };
  const power = async () => (await provider.listVms(ctx())).find((v) => v.providerVmId === id);

  await provider.revertSnapshot(id, ref('no-memory'), ctx());
  let vm = await power();
  t.equal(vm?.powerState, 'off', 'disk-only snapshot: powered off');
  t.equal(vm?.rawPowerState, 'poweredOff');
  t.same((vm?.snapshots ?? []).filter((s) => s.current).map((s) => s.name), ['no-memory'], 'and it is current');

  await provider.revertSnapshot(id, ref('with-memory'), ctx());
  vm = await power();
  t.equal(vm?.powerState, 'running', 'memory snapshot: running again, from off');
  t.same((vm?.snapshots ?? []).filter((s) => s.current).map((s) => s.name), ['with-memory']);
});

t.test('revert power effects of snapshots the adapter takes itself (memory vs crash)', async (t) => {
  // vcsim 0.24 cannot show this (see above); here the snapshots come from the adapter's own modes.
  const { provider, vmId } = await lab(t, scenarios.basic());
  const id = vmId('DC0_H0_VM0');
  const memory = await provider.createSnapshot(id, spec('memory'), ctx());
  const crash = await provider.createSnapshot(id, spec('crash'), ctx());
  const state = async () => (await provider.listVms(ctx())).find((v) => v.providerVmId === id)?.powerState;
  await provider.revertSnapshot(id, crash.providerRef, ctx());
  t.equal(await state(), 'off', "reverting a 'crash' snapshot (no memory) powers the VM off");
  await provider.revertSnapshot(id, memory.providerRef, ctx());
  t.equal(await state(), 'running', "reverting a 'memory' snapshot runs it again");
});

// The whole conformance suite against the responder, with real vSphere revert semantics
// (vcsim 0.24 cannot show them, so conformance-vmware.test.ts has to say 'running' for every mode),
// over HTTPS with the responder's own certificate pinned as `ca`.
const tlsDir = mkdtempSync(join(tmpdir(), 'snapvisor-vim-responder-tls-'));
t.teardown(() => rmSync(tlsDir, { recursive: true, force: true }));
function selfSignedCert(): { certPem: string; keyPem: string } {
  const cert = join(tlsDir, 'cert.pem');
  const key = join(tlsDir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}
let tls: { certPem: string; keyPem: string } | undefined;

describeProviderConformance(t, {
  name: 'vmware (vim responder, vSphere revert semantics)',
  deleteWithTwoChildren: 'reparent',
  unknownVmId: 'vm-999999',
  unknownSnapshotRef: 'snapshot-999999',
  // vSphere: only a memory snapshot brings a running VM back; every other mode records poweredOff.
  powerStateAfterRevert: (mode) => (mode === 'memory' ? 'running' : 'off'),
  async setup() {
    tls ??= selfSignedCert();
    const r = await startVimResponder({
      tls,
      username: USER,
      password: PASSWORD,
      scenario: {
        name: 'conformance',
        description: 'one running and one powered-off VM; tasks complete inside the call',
        vms: [{ name: 'conf-running' }, { name: 'conf-stopped', powerState: 'poweredOff' }],
      },
    });
    const provider = createVmwareProvider(
      'responder',
      { url: r.sdkUrl, username: USER, password: PASSWORD, ca: tls.certPem, requestTimeoutSec: 10, taskTimeoutSec: 30, offline: { shutdownTimeoutSec: 10 } },
      { log, pollIntervalMs: 5 },
    );
    const id = (name: string) => r.model.vms.find((v) => v.name === name)?.ref.value ?? '';
    return {
      provider,
      runningVmId: id('conf-running'),
      stoppedVmId: id('conf-stopped'),
      cleanup: async () => {
        await provider.close();
        await r.stop();
      },
    };
  },
});

// ---- 6. faults on demand -----------------------------------------------------------------

t.test('NotAuthenticated mid-run (a fault on one call): one transparent re-login, the call succeeds', async (t) => {
  // vcsim 0.24 cannot show this at an exact call: its sessions only end by restart or Logout.
  const { r, provider } = await lab(t, scenarios.basic());
  t.equal((await provider.listVms(ctx())).length, 4, 'first pass logged in');
  t.equal(count(r, 'Login'), 1);
  r.failNext({ method: 'CreateContainerView', fault: faults.notAuthenticated({ type: 'ViewManager', value: 'ViewManager' }) });
  t.equal((await provider.listVms(ctx())).length, 4, 'the second pass succeeds anyway');
  t.equal(count(r, 'Login'), 2, 'after exactly one more Login');
  const views = r.requests.filter((q) => q.method === 'CreateContainerView');
  t.equal(views.length, 3, 'CreateContainerView retried once');
  t.not(views[2]?.sessionKey, undefined, 'the retry carried the new session');
});

t.test('sessions expired behind our back (server restart): the read answered with missingSet → re-login', async (t) => {
  // vcsim 0.24 cannot show this without restarting it; the responder forgets every session at once.
  const { r, provider, vmId } = await lab(t, scenarios.basic());
  const id = vmId('DC0_H0_VM0');
  await provider.listSnapshots(id, ctx());
  r.expireSessions();
  t.same(await provider.listSnapshots(id, ctx()), [], 'the read succeeds after the expiry');
  t.equal(count(r, 'Login'), 2, 'one re-login');
});

t.test('NotAuthenticated again right after the re-login → auth, no login loop', async (t) => {
  // vcsim 0.24 cannot show this (a session revoked twice in a row).
  const { r, provider } = await lab(t, scenarios.basic());
  await provider.listVms(ctx());
  r.failNext({ method: 'CreateContainerView', times: 2, fault: faults.notAuthenticated({ type: 'ViewManager', value: 'ViewManager' }) });
  await rejectsWith(t, provider.listVms(ctx()), 'auth', 'listVms when the new session is refused too');
  t.equal(count(r, 'Login'), 2, 'one re-login only');
});

t.test('FileLocked / InvalidState (task error or SOAP fault) → conflict with the server\'s message', async (t) => {
  // vcsim 0.24 cannot show this: it never locks files and has no way to fail a call on demand.
  const locked = faults.fileLocked('[datastore1] DC0_H0_VM0/DC0_H0_VM0.vmdk');
  const scenario = { ...scenarios.basic(), taskFailures: { RemoveSnapshot_Task: locked } };
  const { r, provider, vmId } = await lab(t, scenario);
  const id = vmId('DC0_H0_VM0');
  const snap = await provider.createSnapshot(id, spec('crash'), ctx());

  let e = await rejectsWith(t, provider.deleteSnapshot(id, snap.providerRef, { children: false }, ctx()), 'conflict', 'delete whose task ends in FileLocked');
  t.equal(e?.nativeCode, 'FileLocked');
  t.match(e?.message ?? '', locked.message, 'the localized message');

  r.failNext({ method: 'CreateSnapshot_Task', fault: faults.fileLocked('[datastore1] DC0_H0_VM0/DC0_H0_VM0.vmx') });
  e = await rejectsWith(t, provider.createSnapshot(id, spec('crash'), ctx()), 'conflict', 'CreateSnapshot_Task faulting FileLocked');
  t.equal(e?.nativeCode, 'FileLocked');

  r.failNext({ method: 'RevertToSnapshot_Task', fault: faults.invalidState('The operation is not allowed in the current state.') });
  e = await rejectsWith(t, provider.revertSnapshot(id, snap.providerRef, ctx()), 'conflict', 'RevertToSnapshot_Task faulting InvalidState');
  t.equal(e?.nativeCode, 'InvalidState');
  t.match(e?.message ?? '', /not allowed in the current state/);
});

t.test('ManagedObjectNotFound → not_found (a call faulting, and a VM removed behind our back)', async (t) => {
  // vcsim 0.24 can remove a VM, but cannot make one call fault while the object still looks present.
  const { r, provider, vmId } = await lab(t, scenarios.basic());
  const id = vmId('DC0_H0_VM1');
  const snap = await provider.createSnapshot(id, spec('crash'), ctx());
  r.failNext({ method: 'RevertToSnapshot_Task', fault: faults.managedObjectNotFound({ type: 'VirtualMachineSnapshot', value: snap.providerRef }) });
  const e = await rejectsWith(t, provider.revertSnapshot(id, snap.providerRef, ctx()), 'not_found', 'revert faulting ManagedObjectNotFound');
  t.equal(e?.nativeCode, 'ManagedObjectNotFound');

  r.model.removeVm('DC0_H0_VM1');
  await rejectsWith(t, provider.createSnapshot(id, spec('crash'), ctx()), 'not_found', 'createSnapshot on a VM removed meanwhile');
  t.notOk((await provider.listVms(ctx())).some((v) => v.providerVmId === id), 'and listVms no longer shows it');
});

t.test('a connection dropped during a *_Task call → transient, retry uncertain', async (t) => {
  // vcsim 0.24 cannot show this: it answers every call it receives.
  const { r, provider, vmId } = await lab(t, scenarios.basic());
  const id = vmId('DC0_H0_VM0');
  await provider.listVms(ctx());
  r.failNext({ method: 'CreateSnapshot_Task', drop: true });
  const e = await rejectsWith(t, provider.createSnapshot(id, spec('crash'), ctx()), 'transient', 'CreateSnapshot_Task with its connection dropped');
  t.equal(e?.retry, 'uncertain', 'the task may have been started');

  const snap = await provider.createSnapshot(id, spec('crash'), ctx());
  r.failNext({ method: 'RemoveSnapshot_Task', drop: true });
  const d = await rejectsWith(t, provider.deleteSnapshot(id, snap.providerRef, { children: false }, ctx()), 'transient', 'RemoveSnapshot_Task with its connection dropped');
  t.equal(d?.retry, 'uncertain');

  r.failNext({ method: 'RetrievePropertiesEx', drop: true });
  const l = await rejectsWith(t, provider.listSnapshots(id, ctx()), 'transient', 'a read with its connection dropped');
  t.equal(l?.retry, 'transient', 'a read is safe to repeat');
});

t.test('a task that ends in error → its mapped kind with the localized message, never a Go type name', async (t) => {
  // vcsim 0.24 writes `*types.InvalidPowerState` as a task's localizedMessage; the responder writes
  // vSphere's sentence, and can replay vcsim's wording to check the adapter does not show it raw.
  const scenario: Scenario = {
    ...scenarios.basic(),
    vms: [{ name: 'DC0_H0_VM0', snapshots: [{ name: 'made-elsewhere' }] }],
    taskFailures: {
      CreateSnapshot_Task: faults.invalidPowerState('poweredOn', 'poweredOff'),
      RevertToSnapshot_Task: { ...faults.invalidPowerState('poweredOn', 'poweredOff'), message: '*types.InvalidPowerState' },
      RemoveSnapshot_Task: { type: 'GenericVmConfigFault', message: 'The disk chain is broken.', fields: [] },
    },
  };
  const { provider, vmId } = await lab(t, scenario);
  const id = vmId('DC0_H0_VM0');
  const e = await rejectsWith(t, provider.createSnapshot(id, spec('crash'), ctx()), 'conflict', 'snapshot task ending in InvalidPowerState');
  t.match(e?.message ?? '', /The attempted operation cannot be performed in the current state \(poweredOff\)\./, 'the localized message');
  t.notMatch(e?.message ?? '', /types\./, 'no Go type name');

  const [snap] = await provider.listSnapshots(id, ctx());
  const rv = await rejectsWith(t, provider.revertSnapshot(id, snap?.providerRef ?? '', ctx()), 'conflict', "revert task ending in error with vcsim's wording");
  t.notMatch(rv?.message ?? '', /types\./, "vcsim's Go type name is not shown raw");
  t.match(rv?.message ?? '', /: InvalidPowerState$/, 'the fault type is named instead, once');

  const g = await rejectsWith(t, provider.deleteSnapshot(id, snap?.providerRef ?? '', { children: false }, ctx()), 'internal', 'a task failing with a fault we do not map');
  t.match(g?.message ?? '', /GenericVmConfigFault: The disk chain is broken\./, 'type and localized message');
});

// ---- 7. offline mode -----------------------------------------------------------------------

t.test('offline: ShutdownGuest → poweredOff → snapshot → power on', async (t) => {
  // vcsim 0.24 cannot show guest shutdown timing (its ShutdownGuest powers off at once, and never refuses).
  const scenario = { ...scenarios.basic(), guestShutdown: { afterMs: 30 } as const };
  const { r, provider, vmId } = await lab(t, scenario, { offline: { shutdownTimeoutSec: 20 } });
  const id = vmId('DC0_H0_VM0');
  const seen: number[] = [];
  const snap = await provider.createSnapshot(id, spec('offline'), testContext(undefined, (p) => seen.push(p)));
  const order = methods(r).filter((m) => ['ShutdownGuest', 'PowerOffVM_Task', 'CreateSnapshot_Task', 'PowerOnVM_Task'].includes(m));
  t.same(order, ['ShutdownGuest', 'CreateSnapshot_Task', 'PowerOnVM_Task'], 'shutdown, snapshot, power on — no forced power-off');
  const vm = r.model.vms.find((v) => v.name === 'DC0_H0_VM0');
  t.equal(vm?.powerState, 'poweredOn', 'running again afterwards');
  t.equal(vm?.roots[0]?.state, 'poweredOff', 'the snapshot was taken while off');
  t.equal(snap.mode, null, 'mode unknown: a vSphere tree cannot tell offline from crash (both poweredOff, not quiesced)');
  t.ok(seen.every((p, i) => i === 0 || p >= (seen[i - 1] ?? 0)), `progress never goes back (${seen.join(',')})`);
  t.equal(seen.at(-1), 100);
});

t.test('offline: a guest that never shuts down → conflict without forcePowerOff, PowerOffVM_Task with it', async (t) => {
  // vcsim 0.24 cannot show this: its guests always shut down at once.
  const scenario = { ...scenarios.basic(), guestShutdown: 'never' as const };
  const strict = await lab(t, scenario, { offline: { shutdownTimeoutSec: 0 } });
  const id = strict.vmId('DC0_H0_VM0');
  const e = await rejectsWith(t, strict.provider.createSnapshot(id, spec('offline'), ctx()), 'conflict', 'offline snapshot, guest never shuts down');
  t.match(e?.message ?? '', /forcePowerOff/, 'says how to allow a forced power-off');
  t.equal(count(strict.r, 'CreateSnapshot_Task'), 0, 'no snapshot attempted');
  t.equal(count(strict.r, 'PowerOffVM_Task'), 0, 'not powered off');
  t.equal(strict.r.model.vms[0]?.powerState, 'poweredOn', 'the VM still runs');

  const forced = await lab(t, scenario, { offline: { shutdownTimeoutSec: 0, forcePowerOff: true } });
  const fid = forced.vmId('DC0_H0_VM0');
  await forced.provider.createSnapshot(fid, spec('offline'), ctx());
  const order = methods(forced.r).filter((m) => ['ShutdownGuest', 'PowerOffVM_Task', 'CreateSnapshot_Task', 'PowerOnVM_Task'].includes(m));
  t.same(order, ['ShutdownGuest', 'PowerOffVM_Task', 'CreateSnapshot_Task', 'PowerOnVM_Task'], 'shutdown, forced power-off, snapshot, power on');
  t.equal(forced.r.model.vms[0]?.powerState, 'poweredOn', 'running again');
  t.equal(forced.r.model.vms[0]?.roots[0]?.state, 'poweredOff', 'snapshot taken while off');
});

t.test('offline: no VMware Tools → conflict naming the guest agent; with forcePowerOff it powers off instead', async (t) => {
  // vcsim 0.24 cannot show this: its ShutdownGuest never faults ToolsUnavailable.
  const scenario: Scenario = { ...scenarios.basic(), vms: [{ name: 'no-tools', toolsRunning: false }] };
  const strict = await lab(t, scenario);
  const e = await rejectsWith(t, strict.provider.createSnapshot(strict.vmId('no-tools'), spec('offline'), ctx()), 'conflict', 'offline without Tools');
  t.match(e?.message ?? '', /VMware Tools/);
  t.equal(count(strict.r, 'CreateSnapshot_Task'), 0);

  const forced = await lab(t, scenario, { offline: { forcePowerOff: true } });
  await forced.provider.createSnapshot(forced.vmId('no-tools'), spec('offline'), ctx());
  t.equal(count(forced.r, 'PowerOffVM_Task'), 1, 'powered off instead of a guest shutdown');
  t.equal(forced.r.model.vms[0]?.powerState, 'poweredOn', 'and on again after the snapshot');
});

t.test('offline: the snapshot fails → the VM is powered on again and the snapshot error is what surfaces', async (t) => {
  // vcsim 0.24 cannot show this: it cannot fail a snapshot task on demand.
  const scenario = { ...scenarios.basic(), taskFailures: { CreateSnapshot_Task: faults.fileLocked('[datastore1] DC0_H0_VM0/DC0_H0_VM0.vmx') } };
  const { r, provider, vmId } = await lab(t, scenario);
  const e = await rejectsWith(t, provider.createSnapshot(vmId('DC0_H0_VM0'), spec('offline'), ctx()), 'conflict', 'offline snapshot whose task fails');
  t.equal(e?.nativeCode, 'FileLocked');
  t.equal(count(r, 'PowerOnVM_Task'), 1, 'powered on again');
  t.equal(r.model.vms[0]?.powerState, 'poweredOn');
});
