import { Type } from 'typebox';
import { PROVIDER_KINDS, SNAPSHOT_MODES } from '../../../providers/contract.ts';
import { NullableBoolean, NullableIsoTime, NullableString, StringEnum } from './common.ts';

const ModeSupport = Type.Object({
  supported: Type.Boolean(),
  reason: Type.Optional(Type.String({ description: 'Why the mode is not available (shown on 422)' })),
});

const modes = Object.fromEntries(SNAPSHOT_MODES.map((m) => [m, ModeSupport])) as Record<(typeof SNAPSHOT_MODES)[number], typeof ModeSupport>;

export const Capabilities = Type.Object({
  modes: Type.Object(modes),
  revert: Type.Boolean(),
  deleteChildren: Type.Boolean(),
  deleteAll: Type.Boolean(),
  consolidate: Type.Boolean(),
  duplicateNames: Type.Boolean(),
  descriptions: Type.Boolean(),
  limits: Type.Object({
    maxNameBytes: Type.Integer(),
    maxSnapshotsPerVm: Type.Optional(Type.Integer()),
  }),
});

export const TargetHealth = Type.Object({
  reachable: Type.Boolean(),
  version: Type.Optional(NullableString()),
  authOk: Type.Optional(NullableBoolean()),
  message: Type.Optional(NullableString()),
  checkedAt: NullableIsoTime,
});

export const Target = Type.Object(
  {
    name: Type.String(),
    kind: StringEnum(PROVIDER_KINDS),
    demo: Type.Boolean({ description: 'Part of the bundled demo configuration' }),
    health: TargetHealth,
    capabilities: Capabilities,
    vmCount: Type.Integer(),
  },
  { title: 'Target' },
);

export const TargetList = Type.Object({ items: Type.Array(Target) });

export const TargetParams = Type.Object({ target: Type.String({ minLength: 1, maxLength: 200 }) });
