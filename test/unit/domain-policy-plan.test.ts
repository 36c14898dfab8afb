/**
 * The run planner (src/domain/policy-plan.ts): which VMs a run touches, the create step and its
 * name in the policy's zone, the retention deletes counting the new snapshot, refusals as 'skip'
 * steps (never a silent downgrade), and consolidation steps.
 */
import fc from 'fast-check';
import t from 'tap';
import type { PlannedSnapshot, Policy } from '../../src/domain/policy.ts';
import { planPolicyRun, snapshotNameFor, type PlanVm } from '../../src/domain/policy-plan.ts';

const NOW = new Date('2026-12-04T01:30:00Z');

function policy(extra: Partial<Policy> = {}): Policy {
  return {
    id: 'pol-a',
    name: 'nightly',
    selector: { targets: ['lab'] },
    schedule: '30 2 * * *',
    timezone: 'Europe/Berlin',
    mode: 'crash',
    retention: { keepLast: 2 },
    maxChainDepth: null,
    consolidationSchedule: null,
    enabled: true,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...extra,
  };
}

function vm(id: string, extra: Partial<PlanVm> = {}): PlanVm {
  return { id, name: id, targetName: 'lab', chainDepth: 0, consolidationNeeded: false, supportedModes: ['crash', 'memory', 'offline'], canConsolidate: true, gone: false, ...extra };
}

function snap(id: string, vmId: string, createdAt: string | null, extra: Partial<PlannedSnapshot> = {}): PlannedSnapshot {
  return { id, vmId, parentId: null, name: `name-${id}`, owner: 'snapvisor', policyId: 'pol-a', current: false, createdAt, ...extra };
}

t.test('snapshotNameFor: policy name and local time in the policy zone', async (t) => {
  t.equal(snapshotNameFor({ name: 'nightly', timezone: 'Europe/Berlin' }, NOW), 'nightly-2026-12-04T0230');
  t.equal(snapshotNameFor({ name: 'nightly', timezone: 'UTC' }, NOW), 'nightly-2026-12-04T0130');
  t.equal(snapshotNameFor({ name: 'nightly', timezone: 'America/New_York' }, NOW), 'nightly-2026-12-03T2030');
  // Half-hour offsets: Lord Howe is +11 in December, Kathmandu +5:45.
  t.equal(snapshotNameFor({ name: 'h', timezone: 'Australia/Lord_Howe' }, NOW), 'h-2026-12-04T1230');
  t.equal(snapshotNameFor({ name: 'h', timezone: 'Asia/Kathmandu' }, NOW), 'h-2026-12-04T0715');
  // Leap day, and the Berlin hour repeated on 2026-10-25 (02:30 CEST, then 02:30 CET).
  t.equal(snapshotNameFor({ name: 'x', timezone: 'Europe/Berlin' }, new Date('2028-02-29T10:05:00Z')), 'x-2028-02-29T1105');
  t.equal(snapshotNameFor({ name: 'x', timezone: 'Europe/Berlin' }, new Date('2026-10-25T00:30:00Z')), 'x-2026-10-25T0230');
  t.equal(snapshotNameFor({ name: 'x', timezone: 'Europe/Berlin' }, new Date('2026-10-25T01:30:00Z')), 'x-2026-10-25T0230');
});

t.test('snapshot run: matched VMs get a create, then the deletes retention takes counting the new one', async (t) => {
  const vms = [vm('a'), vm('other-target', { targetName: 'prod' }), vm('b')];
  const snapshots = new Map([
    [
      'a',
      [
        snap('a1', 'a', '2026-12-01T01:30:00Z'),
        snap('a2', 'a', '2026-12-02T01:30:00Z'),
        snap('a3', 'a', '2026-12-03T01:30:00Z'),
        snap('manual', 'a', '2026-11-01T00:00:00Z', { policyId: null }),
        snap('ext', 'a', '2026-11-01T00:00:00Z', { owner: 'external', policyId: null }),
        snap('other', 'a', '2026-11-01T00:00:00Z', { policyId: 'pol-b' }),
      ],
    ],
    ['other-target', [snap('o1', 'other-target', '2026-12-01T00:00:00Z')]],
  ]);
  const plan = planPolicyRun({ policy: policy(), kind: 'snapshot', vms, snapshots, now: NOW });
  t.equal(plan.policyId, 'pol-a');
  t.equal(plan.kind, 'snapshot');
  t.equal(plan.at, '2026-12-04T01:30:00.000Z');
  t.same(plan.steps, [
    { vmId: 'a', vmName: 'a', targetName: 'lab', action: 'create', snapshotName: 'nightly-2026-12-04T0230', reason: 'scheduled crash snapshot' },
    // keepLast 2 = the new one and a3: a1 then a2 go, oldest first.
    { vmId: 'a', vmName: 'a', targetName: 'lab', action: 'delete', snapshotId: 'a1', snapshotName: 'name-a1', reason: 'not kept by any rule' },
    { vmId: 'a', vmName: 'a', targetName: 'lab', action: 'delete', snapshotId: 'a2', snapshotName: 'name-a2', reason: 'not kept by any rule' },
    { vmId: 'b', vmName: 'b', targetName: 'lab', action: 'create', snapshotName: 'nightly-2026-12-04T0230', reason: 'scheduled crash snapshot' },
  ]);
});

t.test('a gone VM and a mode the target cannot take are skip steps, with no deletes', async (t) => {
  const vms = [vm('gone', { gone: true }), vm('nomem', { supportedModes: ['crash', 'offline'] }), vm('none', { supportedModes: [] })];
  const old = (vmId: string) => [snap(`${vmId}-1`, vmId, '2026-01-01T00:00:00Z'), snap(`${vmId}-2`, vmId, '2026-01-02T00:00:00Z'), snap(`${vmId}-3`, vmId, '2026-01-03T00:00:00Z')];
  const snapshots = new Map(vms.map((v) => [v.id, old(v.id)]));
  const plan = planPolicyRun({ policy: policy({ mode: 'memory' }), kind: 'snapshot', vms, snapshots, now: NOW });
  t.same(plan.steps, [
    { vmId: 'gone', vmName: 'gone', targetName: 'lab', action: 'skip', reason: 'VM is gone' },
    { vmId: 'nomem', vmName: 'nomem', targetName: 'lab', action: 'skip', reason: 'mode memory not supported by target lab (supports: crash, offline)' },
    { vmId: 'none', vmName: 'none', targetName: 'lab', action: 'skip', reason: 'mode memory not supported by target lab (supports: none)' },
  ]);
});

t.test('an empty selector plans nothing; name globs and VM ids select', async (t) => {
  const vms = [vm('web-1'), vm('web-2'), vm('db-1')];
  const run = (selector: Policy['selector']) => planPolicyRun({ policy: policy({ selector }), kind: 'snapshot', vms, snapshots: new Map(), now: NOW }).steps.map((s) => s.vmId);
  t.same(run({}), []);
  t.same(run({ namePattern: 'web-*' }), ['web-1', 'web-2']);
  t.same(run({ vms: ['db-1', 'nope'] }), ['db-1']);
  t.same(run({ vms: ['db-1'], namePattern: 'web-*' }), []);
});

t.test('the snapshot about to be made is never a delete step, even under snapshots dated after now', async (t) => {
  // A clock that went back: three of the policy's snapshots are dated after now; keepLast 2 keeps two of them.
  const snapshots = new Map([['a', [snap('f1', 'a', '2026-12-05T00:00:00Z'), snap('f2', 'a', '2026-12-06T00:00:00Z'), snap('f3', 'a', '2026-12-07T00:00:00Z')]]]);
  const plan = planPolicyRun({ policy: policy(), kind: 'snapshot', vms: [vm('a')], snapshots, now: NOW });
  t.same(
    plan.steps.map((s) => [s.action, s.snapshotId ?? null]),
    [
      ['create', null],
      ['delete', 'f1'],
    ],
  );
});

t.test('consolidate run: too deep or flagged and able → consolidate; unable → skip; else nothing', async (t) => {
  const vms = [
    vm('deep', { chainDepth: 5 }),
    vm('at-limit', { chainDepth: 3 }),
    vm('flagged', { consolidationNeeded: true }),
    vm('cannot', { chainDepth: 9, canConsolidate: false }),
    vm('flagged-cannot', { consolidationNeeded: true, canConsolidate: false }),
    vm('gone', { chainDepth: 9, gone: true }),
    vm('unselected', { chainDepth: 9, targetName: 'prod' }),
  ];
  const plan = planPolicyRun({ policy: policy({ maxChainDepth: 3 }), kind: 'consolidate', vms, snapshots: new Map(), now: NOW });
  t.same(
    plan.steps.map((s) => [s.vmId, s.action, s.reason]),
    [
      ['deep', 'consolidate', 'chain depth 5 > maxChainDepth 3'],
      ['flagged', 'consolidate', 'the hypervisor reports consolidation needed'],
      ['cannot', 'skip', 'chain depth 9 > maxChainDepth 3, but target lab cannot consolidate'],
      ['flagged-cannot', 'skip', 'the hypervisor reports consolidation needed, but target lab cannot consolidate'],
      ['gone', 'skip', 'VM is gone'],
    ],
  );
  // No depth limit: only what the hypervisor flags.
  const unlimited = planPolicyRun({ policy: policy({ maxChainDepth: null }), kind: 'consolidate', vms, snapshots: new Map(), now: NOW });
  t.same(
    unlimited.steps.filter((s) => s.action === 'consolidate').map((s) => s.vmId),
    ['flagged'],
  );
});

t.test('property: delete steps name only the VM\'s own snapshots that this policy made, after its create', async (t) => {
  const vmIds = ['v0', 'v1', 'v2', 'v3'];
  const snapArb = fc.record({
    vm: fc.constantFrom(...vmIds),
    owner: fc.constantFrom('mine', 'mine', 'manual', 'external', 'other'),
    minutesAgo: fc.integer({ min: -600, max: 60 * 24 * 90 }),
  });
  const vmArb = fc.record({
    gone: fc.boolean(),
    modes: fc.subarray(['memory', 'crash', 'quiesced', 'offline'] as const),
    target: fc.constantFrom('lab', 'prod'),
  });
  fc.assert(
    fc.property(fc.array(snapArb, { maxLength: 80 }), fc.array(vmArb, { minLength: 4, maxLength: 4 }), fc.integer({ min: 1, max: 5 }), fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }), (rows, vmRows, keepLast, keepDaily) => {
      const vms = vmRows.map((r, i) => vm(vmIds[i]!, { gone: r.gone, supportedModes: r.modes, targetName: r.target }));
      const all = rows.map((r, i) =>
        snap(`s${i}`, r.vm, new Date(NOW.getTime() - r.minutesAgo * 60_000).toISOString(), {
          owner: r.owner === 'external' ? 'external' : 'snapvisor',
          policyId: r.owner === 'mine' ? 'pol-a' : r.owner === 'other' ? 'pol-b' : null,
        }),
      );
      const snapshots = new Map<string, PlannedSnapshot[]>();
      for (const s of all) snapshots.set(s.vmId, [...(snapshots.get(s.vmId) ?? []), s]);
      const retention = keepDaily === undefined ? { keepLast } : { keepLast, keepDaily };
      const plan = planPolicyRun({ policy: policy({ retention }), kind: 'snapshot', vms, snapshots, now: NOW });
      const byId = new Map(all.map((s) => [s.id, s]));
      const created = new Set<string>();
      for (const step of plan.steps) {
        const v = vms.find((x) => x.id === step.vmId)!;
        if (v.targetName !== 'lab') return false;
        if (step.action === 'create') {
          if (v.gone || !v.supportedModes.includes('crash')) return false;
          created.add(step.vmId);
        }
        if (step.action === 'delete') {
          const s = byId.get(step.snapshotId ?? '');
          if (s === undefined || s.vmId !== step.vmId || s.owner !== 'snapvisor' || s.policyId !== 'pol-a') return false;
          if (!created.has(step.vmId)) return false;
        }
      }
      // Every selected, present VM that can take the mode gets exactly one create.
      const want = vms.filter((v) => v.targetName === 'lab' && !v.gone && v.supportedModes.includes('crash')).map((v) => v.id);
      return JSON.stringify(plan.steps.filter((s) => s.action === 'create').map((s) => s.vmId)) === JSON.stringify(want);
    }),
    { numRuns: 300 },
  );
});
