import { Type } from 'typebox';
import { CapabilitiesSchema, PROVIDER_KINDS } from '../../../providers/contract.ts';
import { NullableBoolean, NullableIsoTime, NullableString, StringEnum } from './common.ts';

/** Declared once, in the provider contract: the API shows what the engine and the suite read. */
export const Capabilities = CapabilitiesSchema;

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
