/**
 * VirtualBox adapter against the simulator's faults and state rules: hangs killed at the timeout,
 * the exit-0-with-error quirk, locked machines, mode refusals, concurrent operations.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProviderError, markerForJob } from '../../providers/contract.ts';
import { createVirtualBoxProvider, type VirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { testContext, type TapTest } from '../../providers/conformance/suite.ts';
import { createVboxLab, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { rejection as providerError } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
let n = 0;
const spec = (name: string, mode: 'memory' | 'offline' = 'memory', description = '') => ({ name, description, mode, marker: markerForJob(`fault-${++n}`) });

function setup(t: TapTest, opts: { stepMs?: number; commandTimeoutSec?: number; offline?: Record<string, unknown>; acpi?: 'honours' | 'ignores' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-vbox-fault-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lab: VboxLab = createVboxLab({
    dir,
    stepMs: opts.stepMs ?? 2,
    vms: [
      { name: 'web01', state: 'running', guest: { acpi: opts.acpi ?? 'honours', shutdownMs: 50 } },
      { name: 'db01', state: 'poweroff' },
    ],
  });
  const uuid = (name: string) => lab.readState().vms.find((v) => v.name === name)?.uuid ?? '';
  const provider: VirtualBoxProvider = createVirtualBoxProvider(
    'lab',
    { vboxmanage: lab.vboxmanage, commandTimeoutSec: opts.commandTimeoutSec ?? 30, offline: { shutdownTimeoutSec: 1, ...opts.offline } },
    { log, pollIntervalMs: 20 },
  );
  const vmState = (name: string) => lab.readState().vms.find((v) => v.name === name)?.state;
  return { lab, provider, web: uuid('web01'), db: uuid('db01'), vmState };
}

t.test('a hanging VBoxManage is killed at its timeout → transient', async (t) => {
  const { lab, provider, web } = setup(t, { commandTimeoutSec: 1 });
  lab.setFault('take', 'web01', { type: 'hang' });
  const started = Date.now();
  const e = await providerError(provider.createSnapshot(web, spec('hangs'), testContext()));
  t.equal(e.kind, 'transient');
  t.equal(e.retry, 'uncertain', 'a mutating call that may have run is uncertain');
  t.match(e.message, /\[virtualbox\].*timed out/);
  t.ok(Date.now() - started < 6000, 'returned soon after the 1 s timeout');

  lab.setFault('take', 'web01', null);
  lab.setFault('list', 'web01', { type: 'hang' });
  const read = await providerError(provider.listSnapshots(web, testContext()));
  t.equal(read.kind, 'transient');
  t.equal(read.retry, 'transient', 'a read is safe to retry');
});

t.test('exit 0 with an error block (§1.2) is a failure', async (t) => {
  const { lab, provider, web } = setup(t);
  lab.setFault('take', 'web01', { type: 'error-exit-0', message: 'Something odd happened' });
  const e = await providerError(provider.createSnapshot(web, spec('quirk'), testContext()));
  t.not(e.kind, 'transient');
  t.match(e.message, /Something odd happened/);
  t.notMatch(e.message, /Details:|Context:/, 'only the first error line, not the whole stderr');
  t.same(await provider.listSnapshots(web, testContext()), []);
});

t.test('a machine locked by another session → transient (retryable)', async (t) => {
  const { lab, provider, web } = setup(t);
  lab.setFault('take', 'web01', { type: 'locked', times: 1 });
  const e = await providerError(provider.createSnapshot(web, spec('locked'), testContext()));
  t.equal(e.kind, 'transient');
  t.equal(e.retry, 'transient');
  t.equal(e.nativeCode, 'VBOX_E_INVALID_OBJECT_STATE');
  const ok = await provider.createSnapshot(web, spec('after-lock'), testContext());
  t.equal(ok.name, 'after-lock', 'the retry succeeds once the lock is gone');
});

t.test('a generic failure → internal with the first error line', async (t) => {
  const { lab, provider, web } = setup(t);
  lab.setFault('take', 'web01', { type: 'fail', message: 'Failed to take snapshot', code: 'NS_ERROR_FAILURE' });
  const e = await providerError(provider.createSnapshot(web, spec('boom'), testContext()));
  t.equal(e.kind, 'internal');
  t.equal(e.nativeCode, 'NS_ERROR_FAILURE');
});

t.test('VBoxManage missing → check unreachable, calls transient', async (t) => {
  const provider = createVirtualBoxProvider('nowhere', { vboxmanage: '/nonexistent/VBoxManage' }, { log });
  const health = await provider.check(testContext());
  t.equal(health.reachable, false);
  t.match(health.message, /cannot run/);
  const e = await providerError(provider.listVms(testContext()));
  t.equal(e.kind, 'transient');
});

t.test('options are validated eagerly', async (t) => {
  t.throws(() => createVirtualBoxProvider('x', { vboxmanag: 'typo' }, { log }), /unknown option 'vboxmanag'/);
  t.throws(() => createVirtualBoxProvider('x', { offline: { forcePowerOf: true } }, { log }), /unknown option 'offline.forcePowerOf'/);
  t.throws(() => createVirtualBoxProvider('x', { commandTimeoutSec: 'soon' }, { log }), /commandTimeoutSec/);
});

t.test('modes: memory needs a running VM; offline refuses saved/paused VMs', async (t) => {
  const { lab, provider, db, web, vmState } = setup(t);
  const mem = await providerError(provider.createSnapshot(db, spec('mem-on-stopped'), testContext()));
  t.equal(mem.kind, 'conflict');
  t.match(mem.message, /needs a running VM/);
  t.same(await provider.listSnapshots(db, testContext()), [], 'no silent disk-only snapshot');
  const off = await provider.createSnapshot(db, spec('offline-on-stopped', 'offline'), testContext());
  t.equal(off.name, 'offline-on-stopped');
  t.equal(vmState('db01'), 'poweroff');
  lab.setVmState('web01', 'saved');
  t.equal((await providerError(provider.createSnapshot(web, spec('saved', 'offline'), testContext()))).kind, 'conflict');
  lab.setVmState('web01', 'paused');
  t.equal((await providerError(provider.createSnapshot(web, spec('paused', 'offline'), testContext()))).kind, 'conflict');
  const pausedMem = await provider.createSnapshot(web, spec('paused-mem'), testContext());
  t.equal(pausedMem.current, true, 'memory mode works on a paused VM');
  for (const mode of ['crash', 'quiesced'] as const) {
    const e = await providerError(provider.createSnapshot(web, { ...spec('x'), mode }, testContext()));
    t.equal(e.kind, 'unsupported', mode);
  }
});

t.test('offline: guest that ignores ACPI → conflict, or forced power-off; power state restored', async (t) => {
  const refused = setup(t, { acpi: 'ignores' });
  const e = await providerError(refused.provider.createSnapshot(refused.web, spec('stubborn', 'offline'), testContext()));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /did not shut down/);
  t.equal(refused.vmState('web01'), 'running', 'left running');
  t.same(await refused.provider.listSnapshots(refused.web, testContext()), []);

  const forced = setup(t, { acpi: 'ignores', offline: { forcePowerOff: true } });
  const s = await forced.provider.createSnapshot(forced.web, spec('forced', 'offline'), testContext());
  t.equal(s.name, 'forced');
  t.equal(forced.vmState('web01'), 'running', 'started again after the snapshot');

  const polite = setup(t);
  const p = await polite.provider.createSnapshot(polite.web, spec('polite', 'offline'), testContext());
  t.equal(p.current, true);
  t.equal(polite.vmState('web01'), 'running');
  await polite.provider.revertSnapshot(polite.web, p.providerRef, testContext());
  t.equal(polite.vmState('web01'), 'poweroff', 'an offline snapshot restores to powered off');

  const failing = setup(t);
  failing.lab.setFault('take', 'web01', { type: 'fail', message: 'disk full' });
  await providerError(failing.provider.createSnapshot(failing.web, spec('fails', 'offline'), testContext()));
  t.equal(failing.vmState('web01'), 'running', 'restarted after a failed offline snapshot');
});

t.test('validation → invalid before anything runs', async (t) => {
  const { provider, web } = setup(t);
  for (const [name, description] of [
    ['-looks-like-an-option', ''],
    ['ok', 'first\nSnapshotName-1="forged"'],
    ['CurrentSnapshotUUID="x"', ''],
    ['0b7e2c4a-6f1d-4a8e-9c3b-2d5e8f1a7c90', ''],
  ] as const) {
    const e = await providerError(provider.createSnapshot(web, spec(name, 'memory', description), testContext()));
    t.equal(e.kind, 'invalid', JSON.stringify(name));
  }
  t.same(await provider.listSnapshots(web, testContext()), []);
  t.equal((await providerError(provider.listSnapshots('--version', testContext()))).kind, 'not_found', 'a VM id is never passed as an option');
});

t.test('concurrent operations see the transient state (changing-state errors)', async (t) => {
  // A 5 s transient window: on a loaded CI machine a VBoxManage process can take a second to start,
  // and the second call must reach the VM while the first take still holds it.
  const { provider, web, lab } = setup(t, { stepMs: 500 });
  const zero = await provider.createSnapshot(web, spec('zero'), testContext());
  const results = await Promise.allSettled([
    provider.createSnapshot(web, spec('one'), testContext()),
    (async () => {
      // Start the second take once the first one holds the VM in its transient state.
      const deadline = Date.now() + 30_000;
      while (lab.readState().vms.find((v) => v.name === 'web01')?.state !== 'onlinesnapshotting') {
        if (Date.now() > deadline) throw new Error('the first take never reached OnlineSnapshotting within 30 s');
        await new Promise((r) => setTimeout(r, 10));
      }
      return provider.deleteSnapshot(web, zero.providerRef, { children: false }, testContext());
    })(),
  ]);
  t.equal(results[0].status, 'fulfilled', 'first take succeeds');
  const second = results[1];
  t.equal(second.status, 'rejected');
  if (second.status === 'rejected') {
    // "Not now", not "never": the engine retries it with backoff instead of failing the job.
    t.equal((second.reason as ProviderError).kind, 'transient');
    t.equal((second.reason as ProviderError).retry, 'transient');
    t.match((second.reason as ProviderError).message, /while it is changing the state \(machine state: OnlineSnapshotting\)/);
  }
  t.equal((await provider.listSnapshots(web, testContext())).length, 2, 'zero survived, one was taken');
  await provider.createSnapshot(web, spec('three'), testContext());
  t.pass('once the first take has committed, the VM accepts the next one');
});

t.test('revert of a running VM powers off, restores, and restarts an online snapshot', async (t) => {
  const { provider, web, vmState } = setup(t);
  const a = await provider.createSnapshot(web, spec('a'), testContext());
  await provider.createSnapshot(web, spec('b'), testContext());
  const progress: number[] = [];
  await provider.revertSnapshot(web, a.providerRef, testContext(undefined, (p) => progress.push(p)));
  t.equal(vmState('web01'), 'running');
  t.equal(progress.at(-1), 100);
  const list = await provider.listSnapshots(web, testContext());
  t.equal(list.find((s) => s.current)?.providerRef, a.providerRef);
  // current-with-child refusal: a is current and has one child (b)
  const e = await providerError(provider.deleteSnapshot(web, a.providerRef, { children: false }, testContext()));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /current snapshot and has one child/);
});
