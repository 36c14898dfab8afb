import { Type } from 'typebox';
import { POWER_STATES } from '../../../providers/contract.ts';
import { Id, IsoTime, NullableIsoTime, NullableString, PageQuery, StringEnum } from './common.ts';

export const Vm = Type.Object(
  {
    id: Id,
    targetId: Type.String(),
    targetName: Type.String(),
    providerVmId: Type.String(),
    name: Type.String(),
    powerState: StringEnum(POWER_STATES),
    rawPowerState: Type.String(),
    consolidationNeeded: Type.Boolean(),
    snapshotCount: Type.Integer(),
    chainDepth: Type.Integer({ description: 'Depth of the chain from its root to the current snapshot' }),
    currentSnapshotId: NullableString(),
    firstSeenAt: IsoTime,
    lastSeenAt: IsoTime,
    goneAt: NullableIsoTime,
  },
  { title: 'Vm' },
);

export const VmPage = Type.Object({ items: Type.Array(Vm), next: NullableString({ description: 'Cursor of the next page' }) });

export const VmListQuery = Type.Object({
  target: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  name: Type.Optional(Type.String({ maxLength: 200, description: 'VMs whose name starts with this (case-insensitive for ASCII letters)' })),
  includeGone: Type.Optional(Type.Boolean({ default: false })),
  ...PageQuery,
});

export const VmParams = Type.Object({ vmId: Id });

export const ConsolidateBody = Type.Object(
  { dryRun: Type.Optional(Type.Boolean({ default: false })) },
  { additionalProperties: false },
);
