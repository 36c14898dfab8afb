/**
 * The KVM create path's offline mode (providers/kvm/create.ts on shared/offline.ts) against a
 * scripted virsh and a fake clock: the libvirt steps in order, the forced `destroy` only with
 * offline.forcePowerOff, the restart after a failed snapshot, a cancel while waiting.
 */
import t, { type Test } from 'tap';
import type { CallContext, CreateSpec } from '../../providers/contract.ts';
import { descriptionWithMarker } from '../../providers/shared/description-marker.ts';
import { createGuards } from '../../providers/shared/guards.ts';
import type { Clock } from '../../providers/shared/offline.ts';
import { createSnapshotPath } from '../../providers/kvm/create.ts';
import { parseOptions } from '../../providers/kvm/options.ts';
import { createVirshHost } from '../../providers/kvm/virsh.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { failed, ok, scriptedRunner, type Reply, type Step } from '../fixtures/scripted-runner.ts';

const UUID = '11111111-2222-3333-4444-555555555555';
const V = (...args: string[]): string[] => ['virsh', '-c', 'qemu:///system', ...args];
const spec: CreateSpec = { name: 'nightly', description: '', mode: 'offline', marker: 'snapvisor:job-1' };
const log = silentLogger();
const ctxWith = (signal = new AbortController().signal): CallContext => ({ signal, log, progress: () => {} });

const lookup: Step = [V('snapshot-dumpxml', '--domain', UUID, '--snapshotname', 'nightly'), failed("error: Domain snapshot not found: no domain snapshot with matching name 'nightly'\n")];
const state = (s: string | Reply): Step => [V('domstate', '--domain', UUID), typeof s === 'string' ? ok(`${s}\n\n`) : s];
const shutdown: Step = [V('shutdown', '--domain', UUID), ok('Domain is being shutdown\n')];
const destroy: Step = [V('destroy', '--domain', UUID), ok('Domain destroyed\n')];
const start: Step = [V('start', '--domain', UUID), ok('Domain started\n')];
const create = (reply: Reply = ok('Domain snapshot nightly created\n')): Step => [V('snapshot-create-as', '--domain', UUID, '--name', 'nightly', '--description', descriptionWithMarker('', spec.marker), '--atomic'), reply];
const readBack: Step = [
  V('snapshot-dumpxml', '--domain', UUID, '--snapshotname', 'nightly'),
  ok(`<domainsnapshot><name>nightly</name><description>${spec.marker}</description><state>shutoff</state><creationTime>1700000000</creationTime><memory snapshot='no'/><disks/></domainsnapshot>`),
];

function fakeClock(): Clock & { elapsed(): number } {
  let now = 0;
  return { now: () => now, sleep: async (ms, signal) => void (signal.aborted ? 0 : (now += ms)), elapsed: () => now };
}

function path(t: Test, script: Step[], offline: Record<string, unknown>, clock = fakeClock()) {
  const runner = scriptedRunner(t, script);
  const options = parseOptions('lab', { offline });
  const guards = createGuards('kvm', 'lab');
  const createSnapshot = createSnapshotPath({ host: createVirshHost(runner, options, guards), options, guards, pollMs: 500, clock });
  return { runner, createSnapshot, clock };
}

t.test('a guest that ignores the shutdown: destroyed after the timeout with forcePowerOff, snapshot taken, started again', async (t) => {
  const { runner, createSnapshot, clock } = path(t, [lookup, state('running'), shutdown, state('running'), state('running'), state('running'), destroy, create(), start, readBack], { shutdownTimeoutSec: 1, forcePowerOff: true });
  const made = await createSnapshot(UUID, spec, ctxWith());
  t.match(made, { providerRef: 'nightly', marker: spec.marker, mode: 'offline', current: true });
  t.same(runner.calls.map((c) => c[3] ?? c[0]), ['snapshot-dumpxml', 'domstate', 'shutdown', 'domstate', 'domstate', 'domstate', 'destroy', 'snapshot-create-as', 'start', 'snapshot-dumpxml']);
  t.equal(clock.elapsed(), 1000);
  runner.done();
});

t.test('without forcePowerOff: conflict naming the option; never destroyed, still running so not started', async (t) => {
  const { runner, createSnapshot } = path(t, [lookup, state('running'), shutdown, state('running'), state('running'), state('running'), state('running')], { shutdownTimeoutSec: 1 });
  const e = await rejection(createSnapshot(UUID, spec, ctxWith()));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /target 'lab': offline snapshot of domain .*: the guest did not shut down within 1 s \(state running\); set offline\.forcePowerOff to power it off/);
  runner.done();
});

t.test('the snapshot fails: the domain is started again and the snapshot error is what the caller sees', async (t) => {
  const { runner, createSnapshot } = path(t, [lookup, state('running'), shutdown, state('shut off'), create(failed('error: internal error: disk full\n')), state('shut off'), start], {});
  const e = await rejection(createSnapshot(UUID, spec, ctxWith()));
  t.match(e.message, /disk full/);
  t.equal(runner.calls.at(-1)?.[3], 'start');
  runner.done();
});

t.test('cancelled while waiting for the guest: transient/uncertain, started again once it is off', async (t) => {
  const ac = new AbortController();
  const { runner, createSnapshot } = path(t, [lookup, state('running'), shutdown, state(() => (ac.abort(), ok('in shutdown\n\n'))), state('shut off'), start], {});
  const e = await rejection(createSnapshot(UUID, spec, ctxWith(ac.signal)));
  t.same([e.kind, e.retry], ['transient', 'uncertain']);
  t.match(e.message, /cancelled while waiting for the guest to shut down/);
  runner.done();
});
