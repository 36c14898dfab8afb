/**
 * The in-memory fake provider the engine and API tests use must behave like a real adapter, so it
 * passes the same conformance suite (STYLE §2: only a shared suite catches fake-vs-real drift).
 *
 * It runs three times: as the engine tests use it (VirtualBox-like), with every capability declared
 * (readiness, a snapshot limit, a native remove-all, a `require` rule…) and with every capability
 * declared absent. The last two check the suite itself: with everything declared no case is left
 * out, with nothing declared exactly the cases that depend on a capability are reported not applicable.
 */
import t from 'tap';
import { describeProviderConformance, type ConformanceOptions } from '../../providers/conformance/suite.ts';
import { createFakeProvider, type FakeProvider, type FakeProviderOptions } from '../fixtures/fake-provider.ts';

const RUNNING = 'c0ffee00-0000-4000-8000-000000000001';
const STOPPED = 'c0ffee00-0000-4000-8000-000000000002';

function fakeSuite(name: string, fake: Omit<FakeProviderOptions, 'vms'>, extra: Partial<ConformanceOptions> = {}) {
  let setups = 0;
  let cleanups = 0;
  const run = describeProviderConformance(t, {
    name,
    deleteWithTwoChildren: 'conflict',
    // The fake, as the real adapters: only a memory snapshot brings the VM back running.
    powerStateAfterRevert: (mode) => (mode === 'memory' ? 'running' : 'off'),
    async setup() {
      setups++;
      const provider = createFakeProvider('fake', {
        ...fake,
        vms: [
          { id: RUNNING, name: 'web01', powerState: 'running' },
          { id: STOPPED, name: 'db01', powerState: 'off' },
        ],
      });
      return { provider, runningVmId: RUNNING, stoppedVmId: STOPPED, cleanup: () => void cleanups++ };
    },
    ...extra,
  });
  return { run, counts: () => ({ setups, cleanups }) };
}

const asUsed = fakeSuite(
  'fake',
  {},
  {
    extraTests(it) {
      it('extraTests: a provider-specific case gets a fresh fixture of its own', async (tt, f, x) => {
        const fake = f.provider as FakeProvider;
        tt.same(fake.calls, [], 'no call reached this fixture before the case');
        const made = await x.create(f, f.runningVmId, x.spec('extra', 'memory'));
        tt.same(fake.callsOf('createSnapshot').map((c) => c.spec?.name), ['extra'], 'the fake logged the create');
        tt.equal(made.ready, true);
      });
      it('extraTests: not applicable like any other case', async (tt) => void tt.fail('never runs'), () => 'the fake never needs it');
    },
  },
);

const everything = fakeSuite('fake (every capability)', {
  capabilities: {
    modes: {
      memory: { supported: true },
      crash: { supported: true },
      // A mode whose snapshots are taken but cannot be reverted to: the suite asserts the refusal.
      quiesced: { supported: true, revertRefused: 'this fake cannot revert quiesced snapshots' },
      offline: { supported: true },
    },
    revert: true,
    deleteChildren: true,
    deleteAll: true,
    consolidate: true,
    duplicateNames: true,
    descriptions: true,
    readiness: true,
    limits: {
      maxNameBytes: 64,
      maxSnapshotsPerVm: 3,
      nameRules: [
        { pattern: '^-', effect: 'forbid', reason: "a snapshot name must not start with '-'" },
        { pattern: '^\\S', effect: 'require', reason: 'a snapshot name must start with a visible character' },
        { pattern: '\\u0000', effect: 'forbid', field: 'description', reason: 'a description cannot contain NUL' },
      ],
    },
  },
  nativeDeleteAll: true,
  readyAfterPolls: 2,
});

const nothing = fakeSuite('fake (no capability)', {
  capabilities: {
    modes: {
      memory: { supported: true },
      crash: { supported: false, reason: 'no disk-only snapshots' },
      quiesced: { supported: false, reason: 'no guest quiescing' },
      offline: { supported: false, reason: 'no offline snapshots' },
    },
    revert: false,
    deleteChildren: false,
    deleteAll: false,
    consolidate: false,
    duplicateNames: false,
    descriptions: false,
    readiness: false,
    limits: { maxNameBytes: 64, nameRules: [] },
  },
});

t.test('the suite reports as not applicable exactly the cases that depend on an absent capability', async (tt) => {
  tt.same(
    nothing.run.notApplicable.map((n) => n.case),
    [
      'name rules: a name breaking each declared rule is refused with invalid before the hypervisor is called',
      'description rules: a description breaking each declared rule is refused with invalid before the hypervisor is called',
      'maxSnapshotsPerVm: up to the limit is fine, one more is refused with quota',
      'tree shape after a branch: revert to an earlier snapshot, then create',
      "revert to a 'memory' snapshot",
      "revert to a 'crash' snapshot",
      "revert to a 'quiesced' snapshot",
      "revert to a 'offline' snapshot",
      'delete a snapshot with two children (no children flag)',
      'delete all snapshots of a VM',
      'consolidate: reports what it merged; nothing is left to merge after it',
    ],
    'no capability: name rules, the snapshot limit, everything resting on revert, remove-all and consolidate',
  );
  tt.ok(nothing.run.notApplicable.every((n) => n.provider === 'fake (no capability)' && n.reason.length > 0), 'each names the provider and a reason');
  tt.match(nothing.run.notApplicable.find((n) => n.case === "revert to a 'crash' snapshot")?.reason ?? '', /revert is not declared/, 'the first missing capability is the reason');
  tt.same(everything.run.notApplicable, [], 'every capability: every case applies');
  tt.same(
    asUsed.run.notApplicable.map((n) => n.case),
    [
      'description rules: a description breaking each declared rule is refused with invalid before the hypervisor is called',
      'maxSnapshotsPerVm: up to the limit is fine, one more is refused with quota',
      "revert to a 'crash' snapshot", "revert to a 'quiesced' snapshot", 'extraTests: not applicable like any other case',
    ],
    'as the engine tests use it: no description rules, two unsupported modes, and the extra case that says so',
  );
  for (const s of [asUsed, everything, nothing]) tt.equal(s.counts().cleanups, s.counts().setups, 'every fixture was cleaned up');
});
