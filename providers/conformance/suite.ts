/**
 * The provider conformance suite: one set of behavioural cases every adapter must pass against its
 * lab (VirtualBox simulator, libvirt, vcsim, the ARM fake…).
 *
 * Every case is derived from `provider.capabilities()`, nothing from hand-set flags:
 * - a capability declared absent is asserted (the method is absent, the request is refused with the
 *   kind the contract names), never skipped;
 * - a case that cannot apply at all (revert in a mode the provider does not offer, maxSnapshotsPerVm
 *   when there is no limit…) is reported NOT APPLICABLE: a `# not applicable: …` comment and a
 *   zero-assertion plan with that reason, so tap counts it as a skip — never as a pass — and one line
 *   "<provider>: not applicable: <case> (<reason>)" in the summary printed at the end of the suite.
 *
 * Each case gets a fresh fixture from `setup()` so cases cannot leak state into one another; a
 * provider's own test file adds provider-specific cases with `extraTests`, under the same lifecycle.
 *
 *   const run = describeProviderConformance(t, { name: 'virtualbox', deleteWithTwoChildren: 'conflict', setup: async () => ({ … }) });
 *   // run.notApplicable: the cases reported not applicable, filled as the suite runs
 */
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type tapDefault from 'tap';
import {
  ProviderError,
  SNAPSHOT_MODES,
  capabilityMismatches,
  markerForJob,
  snapshotTextProblems,
  type CallContext,
  type Capabilities,
  type CreateSpec,
  type Logger,
  type PowerState,
  type ProviderErrorKind,
  type ProviderSnapshot,
  type SnapshotMode,
  type SnapshotProvider,
  type TextRule,
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
  /** Shown in test names and in the not-applicable list; usually the provider kind. */
  name: string;
  /** A fresh lab (or a clean corner of one) per case. */
  setup(): Promise<ConformanceFixture>;
  /** A VM id of the provider's own format that does not exist (default: a random UUID). */
  unknownVmId?: string;
  /** A snapshot ref of the provider's own format that does not exist (default: a random UUID). */
  unknownSnapshotRef?: string;
  /**
   * The documented power state of a VM (running before) after reverting to a snapshot taken in
   * `mode` (default: off for offline, running otherwise).
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
  /** Longest wait for a snapshot to become ready (capabilities.readiness; default 120 s). */
  readinessTimeoutMs?: number;
  /**
   * Provider-specific cases (unstorage's `additionalTests`): registered with `it`, they run after the
   * shared ones with the same fixture lifecycle and the same not-applicable reporting.
   */
  extraTests?(it: ConformanceIt): void;
}

/** Why a case does not apply to these capabilities; undefined when it applies. */
export type Applicability = (caps: Capabilities, options: ConformanceOptions) => string | undefined;

export interface ConformanceTools {
  /** A fresh CallContext (never aborted, progress ignored). */
  ctx(): CallContext;
  /** A create spec with a fresh marker. */
  spec(name: string, mode: SnapshotMode, description?: string): CreateSpec;
  /** createSnapshot, then getSnapshot until ready (bounded): what the engine's create job does. */
  create(f: ConformanceFixture, vmId: string, spec: CreateSpec): Promise<ProviderSnapshot>;
  /** Asserts a ProviderError of `kind` that names the provider; answers it. */
  rejectsWith(tt: TapTest, p: Promise<unknown>, kind: ProviderErrorKind | ProviderErrorKind[], what: string): Promise<ProviderError | undefined>;
  /** The VM's power state as listVms shows it. */
  power(f: ConformanceFixture, vmId: string): Promise<PowerState | undefined>;
  /** A mode the provider supports (memory first); fails the case when there is none. */
  baseMode(tt: TapTest, provider: SnapshotProvider): SnapshotMode;
  unknownVmId: string;
  unknownSnapshotRef: string;
}

export type ConformanceCaseBody = (tt: TapTest, f: ConformanceFixture, tools: ConformanceTools) => Promise<void>;
export type ConformanceIt = (name: string, body: ConformanceCaseBody, applies?: Applicability) => void;

export interface NotApplicable {
  provider: string;
  case: string;
  reason: string;
}

export interface ConformanceRun {
  /** The cases reported not applicable, in order, filled as the suite runs. */
  readonly notApplicable: NotApplicable[];
}

interface CaseDef {
  name: string;
  applies?: Applicability;
  body: ConformanceCaseBody;
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
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Texts tried against a declared name rule to find one that breaks it (no per-provider list): the
 * dangers the adapters know of (a leading '-', purely numeric, '/', NUL, a UUID, a key-like line,
 * control characters) and a spread of ordinary and unusual ones for `require` rules.
 */
export const RULE_CANDIDATES: readonly string[] = [
  '-leading-dash',
  '--version',
  '12345',
  'a/b',
  'nul\u0000inside',
  '0f0e0d0c-0b0a-4009-8807-060504030201',
  'x\nSnapshotName=y',
  'x\nCurrentSnapshotUUID=y',
  'ctl\u0001char',
  'bell\u0007',
  'tab\tchar',
  'line\nbreak',
  'cr\rreturn',
  'del\u007f',
  'bad\uFFFE',
  ' leading space',
  'trailing space ',
  '.dot',
  'dot.',
  'back\\slash',
  'a:b',
  'a*b',
  'a?b',
  'a"b',
  "a'b",
  'a<b>',
  'a|b',
  'a%b',
  'a#b',
  'a&b',
  'a;b',
  'a=b',
  'a,b',
  'a+b',
  '[x]',
  '{x}',
  '$(x)',
  '`x`',
  'a b',
  'é',
  '🦀',
  '日本',
  'UPPER',
  'lower',
  'snap_1',
  'snap-1',
  'x',
  // Longer than the 256 characters an Azure tag value (where a description is kept) holds.
  'long '.repeat(52),
];

function breaks(rule: TextRule, value: string): boolean {
  return new RegExp(rule.pattern, 'u').test(value) === (rule.effect === 'forbid');
}

/** A name every declared rule accepts (for cases that need some valid name), or undefined. */
function validName(limits: Capabilities['limits'], preferred: string): string | undefined {
  for (const n of [preferred, 'conformance', 'snap', 'x', ...RULE_CANDIDATES]) {
    if (bytes(n) <= limits.maxNameBytes && snapshotTextProblems(limits, { name: n, description: '' }).length === 0) return n;
  }
  return undefined;
}

/**
 * A text breaking `rule` (in the field the rule is about), with as few other problems as possible,
 * derived from RULE_CANDIDATES; undefined when no candidate breaks it.
 */
export function violatingText(limits: Capabilities['limits'], rule: TextRule): { name: string; description: string } | undefined {
  const field = rule.field ?? 'name';
  const okName = validName(limits, 'rule-probe') ?? 'rule-probe';
  let best: { name: string; description: string; problems: number } | undefined;
  for (const c of RULE_CANDIDATES) {
    if (!breaks(rule, c)) continue;
    const text = field === 'name' ? { name: c, description: '' } : { name: okName, description: c };
    const problems = snapshotTextProblems(limits, text).length;
    if (!best || problems < best.problems) best = { ...text, problems };
  }
  return best && { name: best.name, description: best.description };
}

/** A name of exactly maxNameBytes, multi-byte where the rules allow, that no rule refuses; or undefined. */
export function nameOfExactLength(limits: Capabilities['limits']): string | undefined {
  const n = limits.maxNameBytes;
  for (const fill of ['é', '日', '🦀', 'a']) {
    for (const head of ['n', 'snap', '']) {
      if (bytes(head) > n) continue;
      const count = Math.floor((n - bytes(head)) / bytes(fill));
      const name = head + fill.repeat(count) + 'a'.repeat(n - bytes(head) - count * bytes(fill));
      if (bytes(name) === n && snapshotTextProblems(limits, { name, description: '' }).length === 0) return name;
    }
  }
  return undefined;
}

function modeSupport(caps: Capabilities, mode: SnapshotMode): string | undefined {
  const m = caps.modes[mode];
  return m.supported ? undefined : `mode '${mode}' is not supported: ${m.reason}`;
}

/** The shared cases, in order. Exported through plannedNotApplicable and used by describeProviderConformance. */
function sharedCases(options: ConformanceOptions): CaseDef[] {
  const cases: CaseDef[] = [];
  const it: ConformanceIt = (name, body, applies) => void cases.push({ name, body, ...(applies ? { applies } : {}) });
  const powerAfterRevert = options.powerStateAfterRevert ?? defaultPowerAfterRevert;
  const needsRevert: Applicability = (caps) => (caps.revert ? undefined : 'revert is not declared');
  const needsBranch: Applicability = (caps) => (caps.revert ? undefined : 'a snapshot gets two children only by reverting and creating again, and revert is not declared');

  it('check() reaches the target', async (tt, f, x) => {
    const health = await f.provider.check(x.ctx());
    tt.equal(health.reachable, true, `reachable (${health.message ?? ''})`);
    tt.type(health.version, 'string', 'reports a version');
  });

  it('listVms() has the fixture VMs with their power states', async (tt, f, x) => {
    const vms = await f.provider.listVms(x.ctx());
    const running = vms.find((v) => v.providerVmId === f.runningVmId);
    const stopped = vms.find((v) => v.providerVmId === f.stoppedVmId);
    tt.ok(running, 'running VM listed');
    tt.ok(stopped, 'stopped VM listed');
    tt.equal(running?.powerState, 'running');
    tt.equal(stopped?.powerState, 'off');
    tt.type(running?.rawPowerState, 'string', 'keeps the native state word');
  });

  it('optional methods are present exactly when declared', async (tt, f) => {
    const caps = f.provider.capabilities();
    tt.same(capabilityMismatches(f.provider), [], 'capabilityMismatches() finds nothing');
    tt.equal(typeof f.provider.revertSnapshot === 'function', caps.revert, `revertSnapshot ${caps.revert ? 'present' : 'absent'} (revert: ${caps.revert})`);
    tt.equal(typeof f.provider.consolidate === 'function', caps.consolidate, `consolidate ${caps.consolidate ? 'present' : 'absent'} (consolidate: ${caps.consolidate})`);
    if (!caps.deleteAll) tt.equal(f.provider.deleteAllSnapshots, undefined, 'no deleteAllSnapshots (deleteAll: false)');
    else tt.ok(typeof f.provider.deleteAllSnapshots === 'function' || caps.deleteChildren, 'deleteAll rests on deleteAllSnapshots() or on deleteChildren');
    for (const mode of SNAPSHOT_MODES) {
      const m = caps.modes[mode];
      if (!m.supported) tt.ok(m.reason.trim().length > 0, `unsupported mode '${mode}' carries a reason`);
    }
  });

  for (const mode of SNAPSHOT_MODES) {
    it(`create in mode '${mode}'`, async (tt, f, x) => {
      const caps = f.provider.capabilities();
      const support = caps.modes[mode];
      if (!support.supported) {
        await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec(`unsupported-${mode}`, mode), x.ctx()), 'unsupported', `create in '${mode}'`);
        tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'nothing was created');
        return;
      }
      if (mode === 'quiesced' && options.guestAgent === false) {
        const err = await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec('quiesced-no-agent', mode), x.ctx()), 'conflict', 'quiesced without a guest agent');
        tt.match(err?.message ?? '', /guest.agent/i, 'the error says a guest agent is needed');
        tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'nothing was created (no silent unquiesced snapshot)');
        return;
      }
      const powerBefore = await x.power(f, f.runningVmId);
      const description = caps.descriptions ? 'first one' : '';
      const s1 = x.spec(`first-${mode}`, mode, description);
      const answered = await f.provider.createSnapshot(f.runningVmId, s1, x.ctx());
      if (!caps.readiness) tt.equal(answered.ready, true, 'ready at once (readiness not declared)');
      const first = await x.create(f, f.runningVmId, s1);
      tt.equal(first.providerRef, answered.providerRef, 'waiting for readiness finds the same snapshot');
      tt.equal(first.name, s1.name);
      tt.equal(first.description, description, 'description without the marker');
      tt.equal(first.marker, s1.marker, 'marker round-trips');
      tt.equal(first.current, true, 'new snapshot is current');
      tt.equal(first.parentRef, null, 'first snapshot is a root');
      const s2 = x.spec(`second-${mode}`, mode);
      const second = await x.create(f, f.runningVmId, s2);
      tt.equal(second.parentRef, first.providerRef, 'parent = the previous current snapshot');
      const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
      tt.same(listed.map((s) => s.providerRef).sort(), [first.providerRef, second.providerRef].sort(), 'both listed');
      tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [second.providerRef], 'exactly one current, the newest');
      tt.equal(listed.find((s) => s.providerRef === second.providerRef)?.marker, s2.marker, 'marker listed');
      tt.equal(listed.find((s) => s.providerRef === first.providerRef)?.description, description, 'listed description is the user text');
      tt.equal(await x.power(f, f.runningVmId), powerBefore, 'power state is as before the snapshot');
    });
  }

  it('descriptions: round-trip when declared, refused (unsupported) when not', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const mode = x.baseMode(tt, f.provider);
    const text = 'a description\nwith two lines and  spaces ';
    if (!caps.descriptions) {
      // As the engine answers (SNAPVISOR_ERR_DESCRIPTION_UNSUPPORTED): keeping a description is an
      // operation the target cannot do, not a bad value — `unsupported`, never a silent drop.
      await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec('described', mode, text), x.ctx()), 'unsupported', 'a description on a target without descriptions');
      tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'nothing was created');
      const plain = await x.create(f, f.runningVmId, x.spec('plain', mode));
      tt.equal(plain.description, '', 'an empty description is fine');
      return;
    }
    const made = await x.create(f, f.runningVmId, x.spec('described', mode, text));
    tt.equal(made.description, text, 'create answers the description literally');
    const listed = (await f.provider.listSnapshots(f.runningVmId, x.ctx())).find((s) => s.providerRef === made.providerRef);
    tt.equal(listed?.description, text, 'listed literally');
    tt.equal((await f.provider.getSnapshot(f.runningVmId, made.providerRef, x.ctx())).description, text, 'getSnapshot answers it literally');
  });

  it('duplicate names: coexist when declared, refused (conflict) when not', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const mode = x.baseMode(tt, f.provider);
    const first = await x.create(f, f.runningVmId, x.spec('twin', mode));
    if (caps.duplicateNames) {
      const second = await x.create(f, f.runningVmId, x.spec('twin', mode));
      tt.not(second.providerRef, first.providerRef, 'a second snapshot with the same name has its own ref');
      const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
      tt.same(listed.filter((s) => s.name === 'twin').map((s) => s.providerRef).sort(), [first.providerRef, second.providerRef].sort(), 'both listed under the one name');
      tt.same((await f.provider.getSnapshot(f.runningVmId, first.providerRef, x.ctx())).providerRef, first.providerRef, 'getSnapshot finds the first by its ref');
      await f.provider.deleteSnapshot(f.runningVmId, second.providerRef, { children: false }, x.ctx());
      tt.same((await f.provider.listSnapshots(f.runningVmId, x.ctx())).map((s) => s.providerRef), [first.providerRef], 'deleting one by its ref leaves its namesake alone');
      return;
    }
    // The name is fine in itself; it collides with the VM's state: `conflict` (HTTP 409), like libvirt's "already exists".
    await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec('twin', mode), x.ctx()), 'conflict', 'a second snapshot with the same name (another marker)');
    tt.same((await f.provider.listSnapshots(f.runningVmId, x.ctx())).map((s) => s.providerRef), [first.providerRef], 'nothing new was created');
  });

  for (const field of ['name', 'description'] as const) {
    const rulesOf = (caps: Capabilities) => caps.limits.nameRules.filter((r) => (r.field ?? 'name') === field);
    it(`${field} rules: a ${field} breaking each declared rule is refused with invalid before the hypervisor is called`, async (tt, f, x) => {
      const caps = f.provider.capabilities();
      const mode = x.baseMode(tt, f.provider);
      for (const rule of rulesOf(caps)) {
        await tt.test(`${field} rule /${rule.pattern}/ (${rule.effect}): ${rule.reason}`, async (rt) => {
          const text = violatingText(caps.limits, rule);
          if (!text) {
            rt.fail(`no text in the suite's RULE_CANDIDATES breaks the declared rule /${rule.pattern}/ (${rule.effect}); add one there`);
            return;
          }
          const shown = JSON.stringify(field === 'name' ? text.name : text.description);
          rt.ok(snapshotTextProblems(caps.limits, text).includes(rule.reason), `the derived ${field} ${shown} breaks it`);
          const before = (await f.provider.listSnapshots(f.runningVmId, x.ctx())).map((s) => s.providerRef).sort();
          await x.rejectsWith(rt, f.provider.createSnapshot(f.runningVmId, x.spec(text.name, mode, text.description), x.ctx()), 'invalid', `create with the ${field} ${shown}`);
          rt.same((await f.provider.listSnapshots(f.runningVmId, x.ctx())).map((s) => s.providerRef).sort(), before, 'nothing was created; the listing is unchanged');
          // An unknown VM would answer not_found from the hypervisor: invalid proves the check came first.
          await x.rejectsWith(rt, f.provider.createSnapshot(x.unknownVmId, x.spec(text.name, mode, text.description), x.ctx()), 'invalid', `on an unknown VM, still invalid (checked before the hypervisor is asked)`);
        });
      }
    }, (caps) => {
      if (rulesOf(caps).length === 0) return `no ${field} rules are declared`;
      if (field === 'description' && !caps.descriptions) return 'descriptions are not declared, so every description is refused (see the descriptions case)';
      return undefined;
    });
  }

  it('a name of exactly maxNameBytes (multi-byte where the rules allow) is accepted', async (tt, f, x) => {
    const limits = f.provider.capabilities().limits;
    const name = nameOfExactLength(limits);
    if (!name) return void tt.fail('no name of exactly maxNameBytes can be built');
    tt.equal(bytes(name), limits.maxNameBytes, `${limits.maxNameBytes} bytes, ${[...name].length} characters`);
    const made = await x.create(f, f.runningVmId, x.spec(name, x.baseMode(tt, f.provider)));
    tt.equal(made.name, name, 'the name round-trips');
    tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).find((s) => s.providerRef === made.providerRef)?.name, name, 'listed whole');
  }, (caps) => (nameOfExactLength(caps.limits) ? undefined : `every candidate name of exactly ${caps.limits.maxNameBytes} bytes breaks a declared rule`));

  it('names over maxNameBytes, empty or blank are refused with invalid before the hypervisor is called', async (tt, f, x) => {
    const limits = f.provider.capabilities().limits;
    const mode = x.baseMode(tt, f.provider);
    const exact = nameOfExactLength(limits) ?? 'a'.repeat(limits.maxNameBytes);
    const over = exact + 'a';
    // Fewer characters than maxNameBytes, more bytes: the limit is in UTF-8 bytes.
    const wide = 'é'.repeat(Math.floor(limits.maxNameBytes / 2) + 1);
    const cases: Array<[string, string]> = [
      [`a name of maxNameBytes + 1 (${bytes(over)} bytes)`, over],
      [`a name of ${[...wide].length} characters and ${bytes(wide)} bytes`, wide],
      ['an empty name', ''],
      ['a blank name', '   '],
    ];
    for (const [what, name] of cases) {
      await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec(name, mode), x.ctx()), 'invalid', what);
      await x.rejectsWith(tt, f.provider.createSnapshot(x.unknownVmId, x.spec(name, mode), x.ctx()), 'invalid', `${what}, on an unknown VM (checked before the hypervisor is asked)`);
    }
    tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'nothing was created');
  });

  it('maxSnapshotsPerVm: up to the limit is fine, one more is refused with quota', async (tt, f, x) => {
    const max = f.provider.capabilities().limits.maxSnapshotsPerVm ?? 0;
    const mode = x.baseMode(tt, f.provider);
    for (let i = 1; i <= max; i++) await x.create(f, f.runningVmId, x.spec(`quota-${i}`, mode));
    tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).length, max, `${max} snapshots taken`);
    await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec('one-too-many', mode), x.ctx()), 'quota', 'one snapshot over the limit');
    tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).length, max, 'nothing more was created');
  }, (caps) => (caps.limits.maxSnapshotsPerVm === undefined ? 'no maxSnapshotsPerVm is declared' : undefined));

  it('getSnapshot: same fields as listSnapshots; unknown ref or VM → not_found', async (tt, f, x) => {
    const mode = x.baseMode(tt, f.provider);
    const a = await x.create(f, f.runningVmId, x.spec('get-a', mode, f.provider.capabilities().descriptions ? 'get me' : ''));
    const b = await x.create(f, f.runningVmId, x.spec('get-b', mode));
    const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
    for (const s of [a, b]) {
      const got = await f.provider.getSnapshot(f.runningVmId, s.providerRef, x.ctx());
      tt.same(got, listed.find((l) => l.providerRef === s.providerRef), `getSnapshot(${s.name}) equals its listSnapshots entry`);
    }
    await x.rejectsWith(tt, f.provider.getSnapshot(f.runningVmId, x.unknownSnapshotRef, x.ctx()), 'not_found', 'getSnapshot of an unknown ref');
    await x.rejectsWith(tt, f.provider.getSnapshot(x.unknownVmId, a.providerRef, x.ctx()), 'not_found', 'getSnapshot on an unknown VM');
    await f.provider.deleteSnapshot(f.runningVmId, b.providerRef, { children: false }, x.ctx());
    await x.rejectsWith(tt, f.provider.getSnapshot(f.runningVmId, b.providerRef, x.ctx()), 'not_found', 'getSnapshot of a deleted snapshot');
  });

  it('readiness: ready:false only when declared, then ready through getSnapshot', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const mode = x.baseMode(tt, f.provider);
    const s = x.spec('readiness', mode);
    const made = await f.provider.createSnapshot(f.runningVmId, s, x.ctx());
    tt.type(made.ready, 'boolean', 'create answers ready');
    if (!caps.readiness) {
      tt.equal(made.ready, true, 'create answers ready:true (readiness not declared)');
      tt.ok((await f.provider.listSnapshots(f.runningVmId, x.ctx())).every((l) => l.ready === true), 'every listed snapshot is ready');
      tt.equal((await f.provider.getSnapshot(f.runningVmId, made.providerRef, x.ctx())).ready, true, 'getSnapshot answers ready:true');
      return;
    }
    if (!made.ready && made.progress !== undefined) tt.ok(made.progress >= 0 && made.progress <= 100, `progress ${made.progress} within 0..100`);
    const deadline = Date.now() + (options.readinessTimeoutMs ?? 120_000);
    let now = made;
    let polls = 0;
    for (let wait = 0; !now.ready && Date.now() < deadline; wait = Math.min(1000, wait * 2 || 10)) {
      if (wait > 0) await sleep(wait);
      now = await f.provider.getSnapshot(f.runningVmId, made.providerRef, x.ctx());
      polls++;
      if (!now.ready && now.progress !== undefined) tt.ok(now.progress >= 0 && now.progress <= 100, `poll ${polls}: progress ${now.progress} within 0..100`);
    }
    tt.equal(now.ready, true, `ready after ${polls} getSnapshot polls (create answered ready:${made.ready})`);
    tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).find((l) => l.providerRef === made.providerRef)?.ready, true, 'listed ready');
  });

  /** a ← b, then revert to a and create c: a has two children, c is current. */
  const branch = async (tt: TapTest, f: ConformanceFixture, x: ConformanceTools, [na, nb, nc]: [string, string, string]) => {
    const mode = x.baseMode(tt, f.provider);
    const a = await x.create(f, f.runningVmId, x.spec(na, mode));
    const b = await x.create(f, f.runningVmId, x.spec(nb, mode));
    await f.provider.revertSnapshot!(f.runningVmId, a.providerRef, x.ctx());
    const c = await x.create(f, f.runningVmId, x.spec(nc, mode));
    return { a, b, c };
  };

  it('tree shape after a branch: revert to an earlier snapshot, then create', async (tt, f, x) => {
    const { a, b, c } = await branch(tt, f, x, ['a', 'b', 'c']);
    const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
    const children = listed.filter((s) => s.parentRef === a.providerRef).map((s) => s.providerRef).sort();
    tt.same(children, [b.providerRef, c.providerRef].sort(), 'a has two children');
    tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [c.providerRef], 'c is current');
  }, needsBranch);

  for (const mode of SNAPSHOT_MODES) {
    it(`revert to a '${mode}' snapshot`, async (tt, f, x) => {
      const a = await x.create(f, f.runningVmId, x.spec(`revert-target-${mode}`, mode));
      const later = await x.create(f, f.runningVmId, x.spec(`later-${mode}`, mode));
      const support = f.provider.capabilities().modes[mode];
      if (support.supported && support.revertRefused !== undefined) {
        // Declared unrevertable: an asserted refusal, not a skip, and nothing changes.
        tt.ok(support.revertRefused.length > 0, 'the refusal carries a reason');
        await x.rejectsWith(tt, f.provider.revertSnapshot!(f.runningVmId, a.providerRef, x.ctx()), 'unsupported', `revert to a '${mode}' snapshot`);
        const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
        tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [later.providerRef], 'the current snapshot is unchanged');
        return;
      }
      const progress: number[] = [];
      const outcome = await f.provider.revertSnapshot!(f.runningVmId, a.providerRef, testContext(undefined, (p) => progress.push(p)));
      const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
      tt.same(listed.filter((s) => s.current).map((s) => s.providerRef), [a.providerRef], 'reverted snapshot is current');
      const vm = (await f.provider.listVms(x.ctx())).find((v) => v.providerVmId === f.runningVmId);
      tt.equal(vm?.powerState, powerAfterRevert(mode), `power state after reverting a '${mode}' snapshot`);
      tt.same(outcome, { powerState: vm?.powerState, rawPowerState: vm?.rawPowerState }, 'the revert answers the power state the inventory shows');
      tt.ok(progress.every((p) => p >= 0 && p <= 100), 'progress stays within 0..100');
    }, (caps, o) => needsRevert(caps, o) ?? modeSupport(caps, mode) ?? (mode === 'quiesced' && o.guestAgent === false ? 'the lab has no guest agent, so no quiesced snapshot can be taken' : undefined));
  }

  it('delete a leaf; delete twice is fine', async (tt, f, x) => {
    const mode = x.baseMode(tt, f.provider);
    const a = await x.create(f, f.runningVmId, x.spec('keep', mode));
    const b = await x.create(f, f.runningVmId, x.spec('leaf', mode));
    await f.provider.deleteSnapshot(f.runningVmId, b.providerRef, { children: false }, x.ctx());
    let listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
    tt.same(listed.map((s) => s.providerRef), [a.providerRef], 'only the parent is left');
    await f.provider.deleteSnapshot(f.runningVmId, b.providerRef, { children: false }, x.ctx());
    listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
    tt.same(listed.map((s) => s.providerRef), [a.providerRef], 'deleting again changes nothing');
    await f.provider.deleteSnapshot(f.runningVmId, x.unknownSnapshotRef, { children: false }, x.ctx());
    tt.same((await f.provider.listSnapshots(f.runningVmId, x.ctx())).map((s) => s.providerRef), [a.providerRef], 'deleting a snapshot that never existed succeeds and changes nothing');
  });

  it('delete with children: the subtree goes when declared, unsupported when not', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const mode = x.baseMode(tt, f.provider);
    const a = await x.create(f, f.runningVmId, x.spec('top', mode));
    await x.create(f, f.runningVmId, x.spec('mid', mode));
    await x.create(f, f.runningVmId, x.spec('bottom', mode));
    if (!caps.deleteChildren) {
      await x.rejectsWith(tt, f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: true }, x.ctx()), 'unsupported', 'delete with children');
      tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).length, 3, 'nothing was deleted');
      return;
    }
    await f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: true }, x.ctx());
    tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'the whole subtree is gone');
  });

  it('delete a snapshot with two children (no children flag)', async (tt, f, x) => {
    const { a, b, c } = await branch(tt, f, x, ['fork', 'left', 'right']);
    if (options.deleteWithTwoChildren === 'conflict') {
      await x.rejectsWith(tt, f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: false }, x.ctx()), 'conflict', 'delete with two children');
      tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).length, 3, 'nothing was deleted');
    } else {
      await f.provider.deleteSnapshot(f.runningVmId, a.providerRef, { children: false }, x.ctx());
      const listed = await f.provider.listSnapshots(f.runningVmId, x.ctx());
      tt.same(listed.map((s) => s.providerRef).sort(), [b.providerRef, c.providerRef].sort(), 'children kept');
      tt.same(listed.map((s) => s.parentRef), [null, null], 'both children re-parented to the deleted one’s parent (a root)');
    }
  }, needsBranch);

  it('delete all snapshots of a VM', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const mode = x.baseMode(tt, f.provider);
    const a = await x.create(f, f.runningVmId, x.spec('all-a', mode));
    await x.create(f, f.runningVmId, x.spec('all-b', mode));
    if (caps.revert) {
      await f.provider.revertSnapshot!(f.runningVmId, a.providerRef, x.ctx());
      await x.create(f, f.runningVmId, x.spec('all-c', mode));
    }
    const powerWithTree = await x.power(f, f.runningVmId);
    const removeAll = f.provider.deleteAllSnapshots?.bind(f.provider);
    if (!removeAll) {
      // No native remove-all: the engine deletes each root with its children, as here.
      tt.comment('no deleteAllSnapshots(): deleting root by root with children, as the engine does');
      for (const root of (await f.provider.listSnapshots(f.runningVmId, x.ctx())).filter((s) => s.parentRef === null)) {
        await f.provider.deleteSnapshot(f.runningVmId, root.providerRef, { children: true }, x.ctx());
      }
      tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'no snapshot left');
      tt.equal(await x.power(f, f.runningVmId), powerWithTree, 'the power state is not changed by removing the snapshots');
      return;
    }
    await removeAll(f.runningVmId, x.ctx());
    tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'no snapshot left');
    tt.equal(await x.power(f, f.runningVmId), powerWithTree, 'the power state is not changed by removing the snapshots');
    await removeAll(f.runningVmId, x.ctx());
    tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'removing all snapshots of a VM that has none succeeds');
    await x.rejectsWith(tt, removeAll(x.unknownVmId, x.ctx()), 'not_found', 'remove-all on an unknown VM');
  }, (caps) => (caps.deleteAll ? undefined : 'deleteAll is not declared; the absence of deleteAllSnapshots() is checked with the optional methods'));

  it('create is idempotent by marker', async (tt, f, x) => {
    const mode = x.baseMode(tt, f.provider);
    const s = x.spec('once', mode, f.provider.capabilities().descriptions ? 'only one please' : '');
    const first = await f.provider.createSnapshot(f.runningVmId, s, x.ctx());
    const again = await f.provider.createSnapshot(f.runningVmId, s, x.ctx());
    tt.equal(again.providerRef, first.providerRef, 'same providerRef');
    tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).length, 1, 'one snapshot');
  });

  it('unknown VM and unknown snapshot → not_found', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const mode = x.baseMode(tt, f.provider);
    const vm = x.unknownVmId;
    await x.rejectsWith(tt, f.provider.listSnapshots(vm, x.ctx()), 'not_found', 'listSnapshots of an unknown VM');
    await x.rejectsWith(tt, f.provider.createSnapshot(vm, x.spec('x', mode), x.ctx()), 'not_found', 'createSnapshot on an unknown VM');
    await x.rejectsWith(tt, f.provider.deleteSnapshot(vm, x.unknownSnapshotRef, { children: false }, x.ctx()), 'not_found', 'deleteSnapshot on an unknown VM');
    if (caps.revert) {
      await x.rejectsWith(tt, f.provider.revertSnapshot!(f.runningVmId, x.unknownSnapshotRef, x.ctx()), 'not_found', 'revert to an unknown snapshot');
      await x.rejectsWith(tt, f.provider.revertSnapshot!(vm, x.unknownSnapshotRef, x.ctx()), 'not_found', 'revert on an unknown VM');
    }
    if (caps.consolidate) await x.rejectsWith(tt, f.provider.consolidate!(vm, x.ctx()), 'not_found', 'consolidate an unknown VM');
  });

  it('hostile names and descriptions round-trip literally', async (tt, f, x) => {
    const caps = f.provider.capabilities();
    const dir = mkdtempSync(join(tmpdir(), 'snapvisor-conf-'));
    // World-writable, so an injection run by a remote non-root user could leave its mark here.
    chmodSync(dir, 0o777);
    tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const pwned = join(dir, 'pwned');
    // The name is built from the pieces the declared rules allow (none is dropped by hand).
    const pieces = ['snap ', '"q" ', '; ', '$(touch pwned) ', '`touch pwned` ', "'sq' ", '\\ ', '🦀 ', 'é', '\nline2'];
    let evil = '';
    const left: string[] = [];
    for (const p of pieces) {
      if (snapshotTextProblems(caps.limits, { name: evil + p, description: '' }).length === 0) evil += p;
      else left.push(p);
    }
    if (left.length > 0) tt.comment(`pieces the declared limits or rules refuse, left out: ${JSON.stringify(left)}`);
    tt.same(snapshotTextProblems(caps.limits, { name: evil, description: '' }), [], 'the hostile name keeps the declared limits and rules');
    const mode = x.baseMode(tt, f.provider);
    const description = caps.descriptions ? `desc $(touch ${pwned}) \`touch ${pwned}\` ${evil}\n  indented "x"=y` : '';
    const s = x.spec(evil, mode, description);
    const created = await x.create(f, f.runningVmId, s);
    tt.equal(created.name, s.name, 'name returned literally');
    tt.equal(created.description, s.description, 'description returned literally');
    const listed = (await f.provider.listSnapshots(f.runningVmId, x.ctx())).find((y) => y.providerRef === created.providerRef);
    tt.equal(listed?.name, s.name, 'name listed literally');
    tt.equal(listed?.description, s.description, 'description listed literally');
    tt.equal(listed?.marker, s.marker, 'marker listed');
    tt.notOk(existsSync(pwned), 'no shell ran the $() or backticks');
    tt.notOk(existsSync(join(process.cwd(), 'pwned')), 'nothing ran in the working directory either');
  });

  it('an already-aborted signal rejects quickly', async (tt, f, x) => {
    const mode = x.baseMode(tt, f.provider);
    const started = Date.now();
    await x.rejectsWith(tt, f.provider.createSnapshot(f.runningVmId, x.spec('never', mode), testContext(AbortSignal.abort())), ['transient', 'internal'], 'create with an aborted signal');
    await x.rejectsWith(tt, f.provider.listSnapshots(f.runningVmId, testContext(AbortSignal.abort())), ['transient', 'internal'], 'list with an aborted signal');
    tt.ok(Date.now() - started < 2000, 'rejected within 2 s');
    tt.same(await f.provider.listSnapshots(f.runningVmId, x.ctx()), [], 'nothing was created');
  });

  it('consolidate: reports what it merged; nothing is left to merge after it', async (tt, f, x) => {
    const mode = x.baseMode(tt, f.provider);
    await x.create(f, f.runningVmId, x.spec('before-consolidate', mode));
    const first = await f.provider.consolidate!(f.runningVmId, x.ctx());
    tt.ok(Number.isInteger(first.merged) && first.merged >= 0, `merged is a whole number ≥ 0 (${first.merged}: ${first.message})`);
    tt.type(first.message, 'string', 'with a message');
    const second = await f.provider.consolidate!(f.runningVmId, x.ctx());
    tt.equal(second.merged, 0, 'a second consolidate right after merges nothing');
    const vm = (await f.provider.listVms(x.ctx())).find((v) => v.providerVmId === f.runningVmId);
    tt.equal(vm?.consolidationNeeded, false, 'listVms: consolidationNeeded is false afterwards');
    tt.equal((await f.provider.listSnapshots(f.runningVmId, x.ctx())).length, 1, 'the snapshot is still there');
  }, (caps) => (caps.consolidate ? undefined : 'consolidate is not declared; the absence of consolidate() is checked with the optional methods'));

  options.extraTests?.(it);
  return cases;
}

/** Asserts a ProviderError of `kind` (one of several) that names its provider; answers it. */
export async function rejectsWith(tt: TapTest, p: Promise<unknown>, kind: ProviderErrorKind | ProviderErrorKind[], what: string): Promise<ProviderError | undefined> {
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

/** The cases the suite reports not applicable for these capabilities (what a run prints at its end). Pure. */
export function plannedNotApplicable(caps: Capabilities, options: ConformanceOptions): NotApplicable[] {
  const out: NotApplicable[] = [];
  for (const c of sharedCases(options)) {
    const reason = c.applies?.(caps, options);
    if (reason !== undefined) out.push({ provider: options.name, case: c.name, reason });
  }
  return out;
}

export function describeProviderConformance(t: TapTest, options: ConformanceOptions): ConformanceRun {
  const run: ConformanceRun = { notApplicable: [] };
  const ctx = () => testContext();
  let jobCounter = 0;
  const marker = () => markerForJob(`conf-${process.pid}-${++jobCounter}-${randomUUID().slice(0, 8)}`);
  // Capabilities are a declaration: read once from the first fixture, they decide applicability.
  let declared: Capabilities | undefined;


  const tools: ConformanceTools = {
    ctx,
    spec: (name, mode, description = '') => ({ name, description, mode, marker: marker() }),
    async create(f, vmId, spec) {
      let snap = await f.provider.createSnapshot(vmId, spec, ctx());
      const deadline = Date.now() + (options.readinessTimeoutMs ?? 120_000);
      for (let wait = 0; !snap.ready; wait = Math.min(1000, wait * 2 || 10)) {
        if (Date.now() > deadline) throw new Error(`snapshot '${spec.name}' was not ready within ${options.readinessTimeoutMs ?? 120_000} ms`);
        if (wait > 0) await sleep(wait);
        snap = await f.provider.getSnapshot(vmId, snap.providerRef, ctx());
      }
      return snap;
    },
    rejectsWith,
    power: async (f, vmId) => (await f.provider.listVms(ctx())).find((v) => v.providerVmId === vmId)?.powerState,
    baseMode(tt, p) {
      const m = p.capabilities().modes;
      // memory first: it keeps the VM running.
      const mode = (['memory', 'crash', 'offline', 'quiesced'] as const).find((k) => m[k].supported && !(k === 'quiesced' && options.guestAgent === false));
      if (!mode) tt.fail('the provider supports no snapshot mode the lab can take');
      return mode ?? 'memory';
    },
    unknownVmId: options.unknownVmId ?? randomUUID(),
    unknownSnapshotRef: options.unknownSnapshotRef ?? randomUUID(),
  };

  for (const c of sharedCases(options)) {
    t.test(`${options.name}: ${c.name}`, async (tt) => {
      let f: ConformanceFixture | undefined;
      const fixture = async () => {
        if (!f) {
          const made = await options.setup();
          f = made;
          tt.teardown(() => made.cleanup());
        }
        return f;
      };
      declared ??= (await fixture()).provider.capabilities();
      const reason = c.applies?.(declared, options);
      if (reason !== undefined) {
        run.notApplicable.push({ provider: options.name, case: c.name, reason });
        tt.comment(`not applicable: ${c.name} (${reason})`);
        // Zero assertions with a reason: tap reports the case as SKIP, never as a pass.
        tt.plan(0, `not applicable: ${reason}`);
        return;
      }
      const fx = await fixture();
      try {
        await c.body(tt, fx, tools);
      } catch (e) {
        // A provider that throws anything but ProviderError breaks the contract: report it plainly.
        if (e instanceof ProviderError) tt.ok(e.message.includes(`[${e.provider}]`), 'an unexpected ProviderError still names the provider');
        throw e;
      }
    });
  }

  t.test(`${options.name}: not-applicable cases`, async (tt) => {
    const caps = declared ?? (await (async () => {
      const f = await options.setup();
      tt.teardown(() => f.cleanup());
      return f.provider.capabilities();
    })());
    if (run.notApplicable.length === 0) tt.comment(`${options.name}: every case applied`);
    for (const n of run.notApplicable) tt.comment(`${n.provider}: not applicable: ${n.case} (${n.reason})`);
    tt.same(run.notApplicable, plannedNotApplicable(caps, options), 'exactly the cases the declared capabilities rule out were reported not applicable');
  });

  return run;
}
