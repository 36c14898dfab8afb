import { Type } from 'typebox';
import { SNAPSHOT_MODES } from '../../../providers/contract.ts';
import { Id, IsoTime, NullableIsoTime, NullableString, PageQuery, StringEnum } from './common.ts';

const KINDS = ['snapshot', 'consolidate'] as const;

export const Selector = Type.Object(
  {
    vms: Type.Optional(Type.Array(Id, { maxItems: 10_000, description: 'Snapvisor VM ids' })),
    targets: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 1000, description: 'Target names' })),
    namePattern: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'Glob over the VM name (`*`, `?`, `[a-z]`, `{a,b}`), case-sensitive' })),
  },
  { additionalProperties: false, description: 'Every given field must match; inside vms and targets any entry matches. An empty selector is refused (it would match nothing).' },
);

const Count = (description: string) => Type.Integer({ minimum: 0, maximum: 100_000, description });

export const Retention = Type.Object(
  {
    keepLast: Type.Integer({ minimum: 1, maximum: 100_000, description: 'The newest N are always kept' }),
    keepHourly: Type.Optional(Count('Newest snapshot of each of the newest N hours that have one')),
    keepDaily: Type.Optional(Count('… of each of the newest N days (the policy time zone)')),
    keepWeekly: Type.Optional(Count('… of each of the newest N ISO weeks')),
    keepMonthly: Type.Optional(Count('… of each of the newest N months')),
    maxAge: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'ISO 8601 duration (e.g. P30D): older ones go unless keepLast keeps them' })),
  },
  { additionalProperties: false },
);

/** Policy names become part of snapshot names (`<name>-2026-12-04T0230`): characters every hypervisor takes. */
const PolicyName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'Letters, digits, `.`, `_`, `-`; unique' });
const Cron = (description: string) => Type.String({ minLength: 1, maxLength: 200, description });

const policyFields = {
  name: PolicyName,
  selector: Selector,
  schedule: Cron('5-field cron (minute hour day-of-month month day-of-week) in `timezone`'),
  timezone: Type.String({ minLength: 1, maxLength: 100, description: 'IANA time zone, e.g. Europe/Berlin (default UTC)' }),
  mode: StringEnum(SNAPSHOT_MODES),
  retention: Retention,
  maxChainDepth: Type.Union([Type.Integer({ minimum: 1, maximum: 1000 }), Type.Null()], { description: 'A deeper chain needs consolidation (null: no limit)' }),
  consolidationSchedule: Type.Union([Cron('5-field cron for consolidation runs'), Type.Null()]),
  enabled: Type.Boolean(),
};

export const CreatePolicyBody = Type.Object(
  {
    name: policyFields.name,
    selector: policyFields.selector,
    schedule: policyFields.schedule,
    timezone: Type.Optional(policyFields.timezone),
    mode: policyFields.mode,
    retention: policyFields.retention,
    maxChainDepth: Type.Optional(policyFields.maxChainDepth),
    consolidationSchedule: Type.Optional(policyFields.consolidationSchedule),
    enabled: Type.Optional(policyFields.enabled),
  },
  { additionalProperties: false },
);

export const PatchPolicyBody = Type.Object(
  {
    name: Type.Optional(policyFields.name),
    selector: Type.Optional(policyFields.selector),
    schedule: Type.Optional(policyFields.schedule),
    timezone: Type.Optional(policyFields.timezone),
    mode: Type.Optional(policyFields.mode),
    retention: Type.Optional(policyFields.retention),
    maxChainDepth: Type.Optional(policyFields.maxChainDepth),
    consolidationSchedule: Type.Optional(policyFields.consolidationSchedule),
    enabled: Type.Optional(policyFields.enabled),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const Policy = Type.Object({ id: Id, ...policyFields, createdAt: IsoTime, updatedAt: IsoTime }, { title: 'Policy' });
export const PolicyList = Type.Object({ items: Type.Array(Policy) });

export const PolicyParams = Type.Object({ policyId: Id });
export const PolicyRunParams = Type.Object({ policyId: Id, runId: Id });
export const KindQuery = Type.Object({ kind: Type.Optional(StringEnum(KINDS, { default: 'snapshot' })) });

export const PlanStep = Type.Object({
  vmId: Type.String(),
  vmName: Type.String(),
  targetName: Type.String(),
  action: StringEnum(['create', 'delete', 'consolidate', 'skip'] as const),
  snapshotId: Type.Optional(Type.String()),
  snapshotName: Type.Optional(Type.String()),
  reason: Type.String(),
});
export const PolicyPlan = Type.Object({ policyId: Id, kind: StringEnum(KINDS), at: IsoTime, steps: Type.Array(PlanStep) }, { title: 'PolicyPlan' });

export const PolicyRun = Type.Object(
  {
    id: Id,
    policyId: Id,
    kind: StringEnum(KINDS),
    trigger: StringEnum(['schedule', 'catch-up', 'manual'] as const),
    scheduledFor: NullableIsoTime,
    startedAt: IsoTime,
    finishedAt: NullableIsoTime,
    state: StringEnum(['running', 'succeeded', 'partial', 'failed', 'skipped'] as const),
    jobIds: Type.Array(Type.String(), { description: 'Its jobs, in submit order (each in /v1/jobs)' }),
    message: NullableString(),
  },
  { title: 'PolicyRun' },
);
export const PolicyRunPage = Type.Object({ items: Type.Array(PolicyRun), next: NullableString() });
export const RunsQuery = Type.Object({ ...PageQuery });
