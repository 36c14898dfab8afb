/**
 * Options of a `kind: virtualbox` target, validated eagerly when the provider is created:
 * unknown keys are rejected and every problem names its key.
 */
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { ProviderError } from '../contract.ts';

export const PROVIDER = 'virtualbox';

export const VirtualBoxOptionsSchema = Type.Object(
  {
    /** VBoxManage executable: a name looked up on PATH, or a path. */
    vboxmanage: Type.Optional(Type.String({ minLength: 1, default: 'VBoxManage' })),
    /** Kill a VBoxManage call that runs longer than this. */
    commandTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 600 })),
    offline: Type.Optional(
      Type.Object(
        {
          /** How long to wait for the guest to power off after the ACPI power button. */
          shutdownTimeoutSec: Type.Optional(Type.Number({ minimum: 0, default: 120 })),
          /** Pull the plug when the guest does not shut down in time (else the snapshot fails with conflict). */
          forcePowerOff: Type.Optional(Type.Boolean({ default: false })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type VirtualBoxOptionsInput = Static<typeof VirtualBoxOptionsSchema>;

export interface VirtualBoxOptions {
  vboxmanage: string;
  commandTimeoutSec: number;
  offline: { shutdownTimeoutSec: number; forcePowerOff: boolean };
}

/** Throws ProviderError `invalid` naming every bad, unknown or missing key. */
export function parseOptions(target: string, input: unknown): VirtualBoxOptions {
  const raw = input ?? {};
  const problems: string[] = [];
  for (const e of Value.Errors(VirtualBoxOptionsSchema, raw)) {
    const where = e.instancePath === '' ? '' : e.instancePath.slice(1).replace(/\//g, '.');
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperties?: string[] }).additionalProperties ?? [];
      for (const k of extra) problems.push(`unknown option '${where ? `${where}.` : ''}${k}'`);
    } else if (e.keyword === 'required') {
      const missing = (e.params as { requiredProperties?: string[] }).requiredProperties ?? [];
      for (const k of missing) problems.push(`missing option '${where ? `${where}.` : ''}${k}'`);
    } else if (e.keyword !== 'boolean') {
      problems.push(`option '${where || '(root)'}' ${e.message}`);
    }
  }
  if (problems.length > 0) {
    throw new ProviderError(PROVIDER, 'invalid', `target '${target}': ${[...new Set(problems)].join('; ')}`);
  }
  const o = raw as VirtualBoxOptionsInput;
  return {
    vboxmanage: o.vboxmanage ?? 'VBoxManage',
    commandTimeoutSec: o.commandTimeoutSec ?? 600,
    offline: {
      shutdownTimeoutSec: o.offline?.shutdownTimeoutSec ?? 120,
      forcePowerOff: o.offline?.forcePowerOff ?? false,
    },
  };
}
