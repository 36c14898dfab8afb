import { Type } from 'typebox';
import { POWER_STATES } from '../../../providers/contract.ts';
import { Id, IsoTime, NullableIsoTime, NullableString, PageQuery, StringEnum } from './common.ts';

export const Disk = Type.Object(
  {
    slot: Type.String({ description: 'Controller/slot or device name, e.g. "SATA-0-0" or "vda"' }),
    path: Type.Optional(
      Type.String({ description: "The medium the VM writes to now (its chain's leaf): a file path, or a cloud disk's resource id (Azure); the disk's identity" }),
    ),
    chainDepth: Type.Optional(Type.Integer({ minimum: 0, description: 'Images in the chain above the base, when the provider can tell' })),
  },
  { title: 'Disk' },
);

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
    disks: Type.Array(Disk, { description: "The VM's disks as the last inventory reported them; empty when the target does not report disks" }),
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
