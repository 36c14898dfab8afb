/**
 * The provider conformance suite: one set of behavioural cases every adapter must pass against its
 * lab (VirtualBox simulator, libvirt, vcsim, the ARM fake…).
 *
 * Cases are derived from `provider.capabilities()`: a capability declared absent is asserted to throw
 * `unsupported`, never skipped. Each case gets a fresh fixture from `setup()` so cases cannot leak
 * state into one another.
 *
 *   describeProviderConformance(t, { name: 'virtualbox', setup: async () => ({ provider, runningVmId, stoppedVmId, cleanup }) })
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type tapDefault from 'tap';
import {
  ProviderError,
  SNAPSHOT_MODES,
  markerForJob,
  type CallContext,
  type Logger,
  type PowerState,
  type ProviderErrorKind,
  type SnapshotMode,
  type SnapshotProvider,
} from '../contract.ts';

export type TapTest = Parameters<Parameters<(typeof tapDefault)['test']>[0]>[0];

export interface ConformanceFixture {
  provider: SnapshotProvider;
  /** A VM that is running when the case starts. */
  runningVmId: string;
  /** A VM that is powered off when the case starts. */
  stoppedVmId: string;
  cleanup(): Promise<void> | void;
}

export interface ConformanceOptions {
  /** Shown in test names; usually the provider kind. */
  name: string;
  /** A fresh lab (or a clean corner of one) per case. */
  setup(): Promise<ConformanceFixture>;
  /** A VM id of the provider's own format that does not exist (default: a random UUID). */
  unknownVmId?: string;
  /** A snapshot ref of the provider's own format that does not exist (default: a random UUID). */
  unknownSnapshotRef?: string;
  /**
   * The documented power state of a VM (running before) after reverting to a snapshot taken in
   * `mode` (default: running for memory, off for offline, running otherwise).
   */
  powerStateAfterRevert?(mode: SnapshotMode): PowerState;
  /**
   * What deleting (without children) a snapshot that has two children does on this hypervisor:
   * refuse with `conflict` (VirtualBox) or delete it and re-parent the children (libvirt, vSphere).
   */
  deleteWithTwoChildren: 'conflict' | 'reparent';
  /**
   * Whether the lab's guests run a guest agent (default true). Without one, a declared `quiesced`
   * mode must fail with `conflict` saying the agent is needed, and create nothing — never fall
   * back to an unquiesced snapshot.
   */
  guestAgent?: boolean;
}

const silentLog: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLog;
  },
};

export function testContext(signal: AbortSignal = new AbortController().signal, onProgress?: (pct: number) => void): CallContext {
  return { signal, log: silentLog, progress: (pct) => onProgress?.(pct) };
}

const defaultPowerAfterRevert = (mode: SnapshotMode): PowerState => (mode === 'offline' ? 'off' : 'running');

export function describeProviderConformance(t: TapTest, options: ConformanceOptions): void {
  const ctx = () => testContext();
  let jobCounter = 0;
  const marker = () => markerForJob(`conf-${process.pid}-${++jobCounter}-${randomUUID().slice(0, 8)}`);

  /** Asserts a ProviderError of `kind` that names the provider (kind in `.provider` and in the message). */
  async function rejectsWith(tt: TapTest, p: Promise<unknown>, kind: ProviderErrorKind | ProviderErrorKind[], what: string): Promise<ProviderError | undefined> {
    try {
      await p;
    } catch (e) {
      if (!(e instanceof ProviderError)) {
        tt.fail(`${what}: expected a ProviderError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        return undefined;
      }
      const kinds = Array.isArray(kind) ? kind : [kind];
      tt.ok(kinds.includes(e.kind), `${what}: kind ${e.kind} is one of ${kinds.join('|')} (${e.message})`);
      tt.ok(e.provider.length > 0 && e.message.includes(`[${e.provider}]`), `${what}: the error names the provider`);
      return e;
    }
    tt.fail(`${what}: expected a rejection with kind ${String(kind)}, but it succeeded`);
    return undefined;
  }

  /** One case = one fresh fixture. */
  function it(name: string, body: (tt: TapTest, f: ConformanceFixture) => Promise<void>): void {
    t.test(`${options.name}: ${name}`, async (tt) => {
      const f = await options.setup();
      tt.teardown(() => f.cleanup());
      // A provider that throws anything but ProviderError breaks the contract: report it plainly.
      try {
        await body(tt, f);
      } catch (e) {
        if (e instanceof ProviderError) tt.ok(e.message.includes(`[${e.provider}]`), 'an unexpected ProviderError still names the provider');
        throw e;
      }
    });
  }

  /** The provider's revertSnapshot, which a provider declaring `revert` must have. */
  const revertOf = (f: ConformanceFixture) => {
    const fn = f.provider.revertSnapshot?.bind(f.provider);
    if (!fn) throw new Error(`${options.name} declares revert but has no revertSnapshot()`);
    return fn;
  };
  const spec = (name: string, mode: SnapshotMode, description = '') => ({ name, description, mode, marker: marker() });
  const power = async (f: ConformanceFixture, vmId: string): Promise<PowerState | undefined> =>
    (await f.provider.listVms(ctx())).find((v) => v.providerVmId === vmId)?.powerState;

  // A mode every provider offers is needed for the tree cases; memory first, as it keeps the VM running.
  const pickMode = (p: SnapshotProvider): SnapshotMode | undefined => {
    const m = p.capabilities().modes;
    return (['memory', 'crash', 'offline', 'quiesced'] as const).find((k) => m[k].supported);
  };
  const baseModeOf = (tt: TapTest, p: SnapshotProvider): SnapshotMode => {
    const mode = pickMode(p);
    if (!mode) tt.fail('the provider supports no snapshot mode at all');
    return mode ?? 'memory';
  };

  it('check() reaches the target', async (tt, f) => {
    const health = await f.provider.check(ctx());
    tt.equal(health.reachable, true, `reachable (${health.message ?? ''})`);
    tt.type(health.version, 'string', 'reports a version');
  });

  it('listVms() has the fixture VMs with their power states', async (tt, f) => {
    const vms = await f.provider.listVms(ctx());
    const running = vms.find((v) => v.providerVmId === f.runningVmId);
    const stopped = vms.find((v) => v.providerVmId === f.stoppedVmId);
    tt.ok(running, 'running VM listed');
    tt.ok(stopped, 'stopped VM listed');
    tt.equal(running?.powerState, 'running');
    tt.equal(stopped?.powerState, 'off');
    tt.type(running?.rawPowerState, 'string', 'keeps the native state word');
  });

  for (const mode of SNAPSHOT_MODES) {
    it(`create in mode '${mode}'`, async (tt, f) => {
      const support = f.provider.capabilities().modes[mode];
      if (!support.supported) {
        tt.ok(support.reason.length > 0, 'an unsupported mode carries a reason');
        await rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, spec(`unsupported-${mode}`, mode), ctx()), 'unsupported', `create in '${mode}'`);
        tt.same(await f.provider.listSnapshots(f.runningVmId, ctx()), [], 'nothing was created');
        return;
      }
      if (mode === 'quiesced' && options.guestAgent === false) {
        const err = await rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, spec('quiesced-no-agent', mode), ctx()), 'conflict', 'quiesced without a guest agent');
        tt.match(err?.message ?? '', /guest.agent/i, 'the error says a guest agent is needed');
        tt.same(await f.provider.listSnapshots(f.runningVmId, ctx()), [], 'nothing was created (no silent unquiesced snapshot)');
        return;
      }
      const powerBefore = await power(f, f.runningVmId);
      const s1 = spec(`first-${mode}`, mode, 'first one');
      const first = await f.provider.createSnapshot(f.runningVmId, s1, ctx());
      tt.equal(first.name, s1.name);
      tt.equal(first.description, 'first one', 'description without the marker');
      tt.equal(first.marker, s1.marker, 'marker round-trips');
      tt.equal(first.current, true, 'new snapshot is current');
      tt.equal(first.parentRef, null, 'first snapshot is a root');
      const s2 = spec(`second-${mode}`, mode);
      const second = await f.provider.createSnapshot(f.runningVmId, s2, ctx());
      tt.equal(second.parentRef, first.providerRef, 'parent = the previous current snapshot');
      const listed = await f.provider.listSnapshots(f.runningVmId, ctx());
      tt.same(listed.map((s) => s.providerRef).sort(), [first.providerRef, second.providerRef].sort(), 'both listed');
      tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [second.providerRef], 'exactly one current, the newest');
      tt.equal(listed.find((s) => s.providerRef === second.providerRef)?.marker, s2.marker, 'marker listed');
      tt.equal(listed.find((s) => s.providerRef === first.providerRef)?.description, 'first one', 'listed description is the user text');
      tt.equal(await power(f, f.runningVmId), powerBefore, 'power state is as before the snapshot');
    });
  }

  it('tree shape after a branch: revert to an earlier snapshot, then create', async (tt, f) => {
    const mode = baseModeOf(tt, f.provider);
    const a = await f.provider.createSnapshot(f.runningVmId, spec('a', mode), ctx());
    const b = await f.provider.createSnapshot(f.runningVmId, spec('b', mode), ctx());
    if (!f.provider.capabilities().revert) {
      tt.equal(f.provider.revertSnapshot, undefined, 'no revertSnapshot on a provider that declares revert false');
      return;
    }
    await revertOf(f)(f.runningVmId, a.providerRef, ctx());
    const c = await f.provider.createSnapshot(f.runningVmId, spec('c', mode), ctx());
    const listed = await f.provider.listSnapshots(f.runningVmId, ctx());
    const children = listed.filter((s) => s.parentRef === a.providerRef).map((s) => s.providerRef).sort();
    tt.same(children, [b.providerRef, c.providerRef].sort(), 'a has two children');
    tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [c.providerRef], 'c is current');
  });

  it('revert', async (tt, f) => {
    const caps = f.provider.capabilities();
    const mode = baseModeOf(tt, f.provider);
    const a = await f.provider.createSnapshot(f.runningVmId, spec('revert-target', mode), ctx());
    await f.provider.createSnapshot(f.runningVmId, spec('later', mode), ctx());
    if (!caps.revert) {
      tt.equal(f.provider.revertSnapshot, undefined, 'no revertSnapshot on a provider that declares revert false');
      return;
    }
    const progress: number[] = [];
    const outcome = await revertOf(f)(f.runningVmId, a.providerRef, testContext(undefined, (p) => progress.push(p)));
    const listed = await f.provider.listSnapshots(f.runningVmId, ctx());
    tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [a.providerRef], 'reverted snapshot is current');
    const expected = (options.powerStateAfterRevert ?? defaultPowerAfterRevert)(mode);
    const vm = (await f.provider.listVms(ctx())).find((v) => v.providerVmId === f.runningVmId);
    tt.equal(vm?.powerState, expected, `power state after reverting a '${mode}' snapshot`);
    tt.same(outcome, { powerState: vm?.powerState, rawPowerState: vm?.rawPowerState }, 'the revert answers the power state the inventory shows');
    tt.ok(progress.every((p) => p >= 0 && p <= 100), 'progress stays within 0..100');
    await rejectsWith(tt, revertOf(f)(f.runningVmId, options.unknownSnapshotRef ?? randomUUID(), ctx()), 'not_found', 'revert to an unknown snapshot');
  });

  it('delete a leaf; delete twice is fine', async (tt, f) => {
    const mode = baseModeOf(tt, f.provider);
    const a = await f.provider.createSnapshot(f.runningVmId, spec('keep', mode), ctx());
    const b = await f.provider.createSnapshot(f.runningVmId, spec('leaf', mode), ctx());
    await f.provider.deleteSnapshot(f.runningVmId, b.providerRef, { children: false }, ctx());
    let listed = await f.provider.listSnapshots(f.runningVmId, ctx());
    tt.same(listed.map((s) => s.providerRef), [a.providerRef], 'only the parent is left');
    await f.provider.deleteSnapshot(f.runningVmId, b.providerRef, { children: false }, ctx());
    listed = await f.provider.listSnapshots(f.runningVmId, ctx());
    tt.same(listed.map((s) => s.providerRef), [a.providerRef], 'deleting again changes nothing');
    await f.provider.deleteSnapshot(f.runningVmId, options.unknownSnapshotRef ?? randomUUID(), { children: false }, ctx());
    tt.pass('deleting a snapshot that never existed succeeds (already gone)');
  });

  it('delete with children', async (tt, f) => {
    const caps = f.provider.capabilities();
    const mode = baseModeOf(tt, f.provider);
    const a = await f.provider.createSnapshot(f.runningVmId, spec('top', mode), ctx());
    await f.provider.createSnapshot(f.runningVmId, spec('mid', mode), ctx());
    await f.provider.createSnapshot(f.runningVmId, spec('bottom', mode), ctx());
    if (!caps.deleteChildren) {
      await rejectsWith(tt, f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: true }, ctx()), 'unsupported', 'delete with children');
      return;
    }
    await f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: true }, ctx());
    tt.same(await f.provider.listSnapshots(f.runningVmId, ctx()), [], 'the whole subtree is gone');
  });

  it('delete all snapshots of a VM', async (tt, f) => {
    const caps = f.provider.capabilities();
    const mode = baseModeOf(tt, f.provider);
    if (!caps.deleteAll) {
      tt.equal(f.provider.deleteAllSnapshots, undefined, 'no native remove-all on a provider that declares deleteAll false');
      return;
    }
    if (!f.provider.deleteAllSnapshots) {
      // The engine removes the roots with their children: that needs deleteChildren, tested above.
      tt.ok(caps.deleteChildren, 'deleteAll without a native operation rests on deleteChildren');
      return;
    }
    const a = await f.provider.createSnapshot(f.runningVmId, spec('all-a', mode), ctx());
    await f.provider.createSnapshot(f.runningVmId, spec('all-b', mode), ctx());
    if (caps.revert) {
      await revertOf(f)(f.runningVmId, a.providerRef, ctx());
      await f.provider.createSnapshot(f.runningVmId, spec('all-c', mode), ctx());
    }
    const powerWithTree = await power(f, f.runningVmId);
    await f.provider.deleteAllSnapshots(f.runningVmId, ctx());
    tt.same(await f.provider.listSnapshots(f.runningVmId, ctx()), [], 'no snapshot left');
    tt.equal(await power(f, f.runningVmId), powerWithTree, 'the power state is not changed by removing the snapshots');
    await f.provider.deleteAllSnapshots(f.runningVmId, ctx());
    tt.pass('removing all snapshots of a VM that has none succeeds');
    await rejectsWith(tt, f.provider.deleteAllSnapshots(options.unknownVmId ?? randomUUID(), ctx()), 'not_found', 'remove-all on an unknown VM');
  });

  it('delete a snapshot with two children (no children flag)', async (tt, f) => {
    const caps = f.provider.capabilities();
    const mode = baseModeOf(tt, f.provider);
    if (!caps.revert) {
      tt.pass('a branch needs revert, which this provider declares absent (revert → unsupported is asserted in the revert case)');
      return;
    }
    const a = await f.provider.createSnapshot(f.runningVmId, spec('fork', mode), ctx());
    const b = await f.provider.createSnapshot(f.runningVmId, spec('left', mode), ctx());
    await revertOf(f)(f.runningVmId, a.providerRef, ctx());
    const c = await f.provider.createSnapshot(f.runningVmId, spec('right', mode), ctx());
    if (options.deleteWithTwoChildren === 'conflict') {
      await rejectsWith(tt, f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: false }, ctx()), 'conflict', 'delete with two children');
      tt.equal((await f.provider.listSnapshots(f.runningVmId, ctx())).length, 3, 'nothing was deleted');
    } else {
      await f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: false }, ctx());
      const listed = await f.provider.listSnapshots(f.runningVmId, ctx());
      tt.same(listed.map((s) => s.providerRef).sort(), [b.providerRef, c.providerRef].sort(), 'children kept');
    }
  });

  it('create is idempotent by marker', async (tt, f) => {
    const mode = baseModeOf(tt, f.provider);
    const s = spec('once', mode, 'only one please');
    const first = await f.provider.createSnapshot(f.runningVmId, s, ctx());
    const again = await f.provider.createSnapshot(f.runningVmId, s, ctx());
    tt.equal(again.providerRef, first.providerRef, 'same providerRef');
    tt.equal((await f.provider.listSnapshots(f.runningVmId, ctx())).length, 1, 'one snapshot');
  });

  it('unknown VM and unknown snapshot → not_found', async (tt, f) => {
    const vm = options.unknownVmId ?? randomUUID();
    const mode = baseModeOf(tt, f.provider);
    await rejectsWith(tt, f.provider.listSnapshots(vm, ctx()), 'not_found', 'listSnapshots of an unknown VM');
    await rejectsWith(tt, f.provider.createSnapshot(vm, spec('x', mode), ctx()), 'not_found', 'createSnapshot on an unknown VM');
    await rejectsWith(tt, f.provider.deleteSnapshot(vm, options.unknownSnapshotRef ?? randomUUID(), { children: false }, ctx()), 'not_found', 'deleteSnapshot on an unknown VM');
    if (f.provider.capabilities().revert) {
      await rejectsWith(tt, revertOf(f)(f.runningVmId, options.unknownSnapshotRef ?? randomUUID(), ctx()), 'not_found', 'revert to an unknown snapshot');
    }
  });

  it('hostile names and descriptions round-trip literally', async (tt, f) => {
    const dir = mkdtempSync(join(tmpdir(), 'snapvisor-conf-'));
    // World-writable, so an injection run by a remote non-root user could leave its mark here.
    chmodSync(dir, 0o777);
    tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const pwned = join(dir, 'pwned');
    // No '/' in the name (libvirt forbids it): the absolute-path payload rides in the description.
    const evil = `snap "q" ; $(touch pwned) \`touch pwned\` 'sq' \\ 🦀 é\nline2`;
    const mode = baseModeOf(tt, f.provider);
    const maxBytes = f.provider.capabilities().limits.maxNameBytes;
    tt.ok(Buffer.byteLength(evil) <= maxBytes, 'the hostile name fits the declared limit');
    const s = { name: evil, description: `desc $(touch ${pwned}) \`touch ${pwned}\` ${evil}\n  indented "x"=y`, mode, marker: marker() };
    const created = await f.provider.createSnapshot(f.runningVmId, s, ctx());
    tt.equal(created.name, s.name, 'name returned literally');
    tt.equal(created.description, s.description, 'description returned literally');
    const listed = (await f.provider.listSnapshots(f.runningVmId, ctx())).find((x) => x.providerRef === created.providerRef);
    tt.equal(listed?.name, s.name, 'name listed literally');
    tt.equal(listed?.description, s.description, 'description listed literally');
    tt.equal(listed?.marker, s.marker, 'marker listed');
    tt.notOk(existsSync(pwned), 'no shell ran the $() or backticks');
    await rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, { ...spec('', mode) }, ctx()), 'invalid', 'empty name');
    await rejectsWith(
      tt,
      f.provider.createSnapshot(f.runningVmId, { ...spec('x'.repeat(maxBytes + 1), mode) }, ctx()),
      'invalid',
      'name over limits.maxNameBytes',
    );
  });

  it('an already-aborted signal rejects quickly', async (tt, f) => {
    const mode = baseModeOf(tt, f.provider);
    const started = Date.now();
    await rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, spec('never', mode), testContext(AbortSignal.abort())), ['transient', 'internal'], 'create with an aborted signal');
    await rejectsWith(tt, f.provider.listSnapshots(f.runningVmId, testContext(AbortSignal.abort())), ['transient', 'internal'], 'list with an aborted signal');
    tt.ok(Date.now() - started < 2000, 'rejected within 2 s');
    tt.same(await f.provider.listSnapshots(f.runningVmId, ctx()), [], 'nothing was created');
  });

  it('consolidate: declared or unsupported', async (tt, f) => {
    const consolidate = f.provider.consolidate?.bind(f.provider);
    if (f.provider.capabilities().consolidate) {
      if (!consolidate) return void tt.fail('declares consolidate but has no consolidate()');
      const report = await consolidate(f.runningVmId, ctx());
      tt.type(report.merged, 'number');
    } else {
      tt.equal(consolidate, undefined, 'no consolidate() on a provider that declares consolidate false');
    }
  });
}
