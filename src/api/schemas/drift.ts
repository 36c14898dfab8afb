import { Type } from 'typebox';
import { NullableIsoTime, NullableString, StringEnum } from './common.ts';

const SnapshotItem = Type.Object({
  snapshotId: Type.String(),
  name: Type.String(),
  vmId: Type.String(),
  vmName: Type.String(),
  at: NullableIsoTime,
});

const Count = Type.Integer({ minimum: 0 });

export const DriftSummary = Type.Object({
  createdOutside: Count,
  deletedOutside: Count,
  vmsGone: Count,
  consolidationNeeded: Count,
  orphans: Type.Unsafe<number | null>({ type: ['integer', 'null'], minimum: 0, description: 'null when the provider cannot list orphans' }),
});

export const TargetDrift = Type.Object(
  {
    target: Type.String(),
    checkedAt: NullableIsoTime,
    createdOutside: Type.Array(SnapshotItem, { description: 'Present snapshots made outside Snapvisor (owner external); `at` is their creation time' }),
    deletedOutside: Type.Array(SnapshotItem, { description: 'Snapshots gone without a Snapvisor job deleting them; `at` is when Snapvisor saw them gone' }),
    vmsGone: Type.Array(Type.Object({ vmId: Type.String(), name: Type.String(), goneAt: Type.String({ format: 'date-time' }) })),
    consolidationNeeded: Type.Array(
      Type.Object({
        vmId: Type.String(),
        name: Type.String(),
        reason: StringEnum(['hypervisor', 'chain-depth'] as const),
        chainDepth: Count,
        maxChainDepth: Type.Unsafe<number | null>({ type: ['integer', 'null'] }),
      }),
    ),
    orphans: Type.Object({
      supported: Type.Boolean(),
      message: NullableString(),
      checkedAt: NullableIsoTime,
      items: Type.Unsafe<Array<{ ref: string; kind: string; reason: string; sizeBytes?: number }> | null>({
        type: ['array', 'null'],
        items: {
          type: 'object',
          properties: { ref: { type: 'string' }, kind: { type: 'string' }, reason: { type: 'string' }, sizeBytes: { type: 'integer' } },
          required: ['ref', 'kind', 'reason'],
        },
      }),
    }),
    summary: DriftSummary,
  },
  { title: 'TargetDrift' },
);

export const DriftList = Type.Object({ items: Type.Array(TargetDrift) });

export const DriftQuery = Type.Object({ target: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) });
