/**
 * Eager validation of a target's adapter options against its TypeBox schema: every problem names
 * its key (dotted, e.g. `offline.forcePowerOff`); unknown keys are refused. Values are never echoed,
 * so a mistyped secret does not end up in an error message.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { ProviderError } from '../contract.ts';

/** Old dotted key → new dotted key: a config that still uses the old one is told the new name. */
export type RenamedOptions = Readonly<Record<string, string>>;

export function optionProblems(schema: TSchema, raw: unknown, renamed: RenamedOptions = {}): string[] {
  const problems: string[] = [];
  const allowed = new Map<string, unknown[]>();
  for (const e of Value.Errors(schema, raw)) {
    const where = e.instancePath === '' ? '' : e.instancePath.slice(1).replace(/\//g, '.');
    const key = (k: string) => `${where ? `${where}.` : ''}${k}`;
    switch (e.keyword) {
      case 'additionalProperties':
        for (const k of (e.params as { additionalProperties?: string[] }).additionalProperties ?? []) {
          const now = renamed[key(k)];
          problems.push(now === undefined ? `unknown option '${key(k)}'` : `${key(k)} was renamed to ${now}`);
        }
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
 * The options of one target, checked against the adapter's schema and then by `more` (checks the
 * schema cannot express; run only when the schema found nothing): ProviderError `invalid` naming
 * every problem, else the input typed by the schema (defaults still to be applied by the caller).
 */
export function validOptions<S extends TSchema>(
  provider: string,
  target: string,
  schema: S,
  input: unknown,
  more: (o: Static<S>) => string[] = () => [],
  renamed: RenamedOptions = {},
): Static<S> {
  const raw = input ?? {};
  const problems = optionProblems(schema, raw, renamed);
  const o = raw as Static<S>;
  if (problems.length === 0) problems.push(...more(o));
  if (problems.length > 0) throw new ProviderError(provider, 'invalid', `target '${target}': ${problems.join('; ')}`);
  return o;
}

/**
 * `offline:` of a target that can ask the guest to shut down (VirtualBox's ACPI button, vSphere's
 * ShutdownGuest, `virsh shutdown`): how long to wait for it, and whether to pull the plug after that (else the
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

/** KVM's `offline.forceOff` became the shared `offline.forcePowerOff`. */
export const OFFLINE_RENAMES: RenamedOptions = { 'offline.forceOff': 'offline.forcePowerOff' };
