/**
 * Eager validation of a target's adapter options against its TypeBox schema: every problem names
 * its key (dotted, e.g. `offline.forcePowerOff`); unknown keys are refused. Values are never echoed,
 * so a mistyped secret does not end up in an error message.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';

export function optionProblems(schema: TSchema, raw: unknown): string[] {
  const problems: string[] = [];
  const allowed = new Map<string, unknown[]>();
  for (const e of Value.Errors(schema, raw)) {
    const where = e.instancePath === '' ? '' : e.instancePath.slice(1).replace(/\//g, '.');
    const key = (k: string) => `${where ? `${where}.` : ''}${k}`;
    switch (e.keyword) {
      case 'additionalProperties':
        for (const k of (e.params as { additionalProperties?: string[] }).additionalProperties ?? []) problems.push(`unknown option '${key(k)}'`);
        break;
      case 'required':
        for (const k of (e.params as { requiredProperties?: string[] }).requiredProperties ?? []) problems.push(`missing option '${key(k)}'`);
        break;
      case 'const': {
        // A union of literals reports one `const` error per allowed value; say them once.
        const list = allowed.get(where) ?? [];
        list.push((e.params as { allowedValue?: unknown }).allowedValue);
        allowed.set(where, list);
        break;
      }
      case 'boolean': // the additionalProperties: false sub-schema; reported above
      case 'anyOf': // its branches are reported as `const`
        break;
      default:
        problems.push(`option '${where || '(root)'}' ${e.message}`);
    }
  }
  for (const [where, values] of allowed) problems.push(`option '${where}' must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`);
  return [...new Set(problems)];
}

/**
 * `offline:` of a target that can ask the guest to shut down (VirtualBox's ACPI button, vSphere's
 * ShutdownGuest): how long to wait for it, and whether to pull the plug after that (else the
 * offline snapshot fails with `conflict`).
 */
export const OfflineOptionsSchema = Type.Object(
  {
    shutdownTimeoutSec: Type.Optional(Type.Number({ minimum: 0, default: 120 })),
    forcePowerOff: Type.Optional(Type.Boolean({ default: false })),
  },
  { additionalProperties: false },
);

export interface OfflineOptions {
  shutdownTimeoutSec: number;
  forcePowerOff: boolean;
}

export function offlineOptions(o: Static<typeof OfflineOptionsSchema> | undefined): OfflineOptions {
  return { shutdownTimeoutSec: o?.shutdownTimeoutSec ?? 120, forcePowerOff: o?.forcePowerOff ?? false };
}
