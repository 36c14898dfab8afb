/**
 * A target block as editors see it (config/snapvisor.schema.json): a union discriminated by `kind`,
 * whose branch for each kind is the common target fields plus that adapter's own options schema
 * (providers/<kind>/options.ts) — the declaration the adapter validates with, not a copy of it.
 *
 * The daemon does not load this module: its loader checks the common fields (TargetConfig in
 * schema.ts, extra keys allowed) and each adapter checks its own options when the registry is
 * built, with messages that name the option (and, e.g., the new name of a renamed one). That also
 * keeps adapter modules (and their transports) out of config loading.
 */
import { Type, type TObject, type TProperties } from 'typebox';
import type { ProviderKind } from '../../providers/contract.ts';
import { AzureOptionsSchema } from '../../providers/azure/options.ts';
import { HyperVOptionsSchema } from '../../providers/hyperv/options.ts';
import { KvmOptionsSchema } from '../../providers/kvm/options.ts';
import { VirtualBoxOptionsSchema } from '../../providers/virtualbox/options.ts';
import { VmwareOptionsSchema } from '../../providers/vmware/options.ts';
import { Config, TargetConfig } from './schema.ts';

/** Each adapter's options schema, by kind: every kind this build can run has one (tested). */
export const TARGET_OPTIONS_SCHEMAS = {
  kvm: KvmOptionsSchema,
  vmware: VmwareOptionsSchema,
  virtualbox: VirtualBoxOptionsSchema,
  hyperv: HyperVOptionsSchema,
  azure: AzureOptionsSchema,
} satisfies Partial<Record<ProviderKind, TObject>>;

const TITLES: Record<ProviderKind, string> = {
  azure: 'Azure target',
  vmware: 'VMware vSphere target',
  hyperv: 'Hyper-V target',
  virtualbox: 'VirtualBox target',
  kvm: 'KVM (libvirt) target',
};

/** One branch: the common fields with `kind` fixed, then the adapter's options; nothing else. */
export function targetBranch(kind: ProviderKind, options: TObject): TObject {
  const clash = Object.keys(options.properties).filter((key) => key in TargetConfig.properties);
  if (clash.length > 0) throw new Error(`${kind} options reuse target field(s) ${clash.join(', ')}`);
  const common = Object.entries(TargetConfig.properties).map(([key, schema]) => [key, key === 'kind' ? Type.Literal(kind) : schema] as const);
  const properties: TProperties = { ...Object.fromEntries(common), ...options.properties };
  return Type.Object(properties, { additionalProperties: false, title: TITLES[kind] });
}

export const TargetConfigByKind = Type.Union(
  Object.entries(TARGET_OPTIONS_SCHEMAS).map(([kind, options]) => targetBranch(kind as ProviderKind, options)),
  { description: 'A hypervisor endpoint. `kind` picks the adapter; the other keys are that adapter’s options.' },
);

/** The configuration file with typed target blocks: what config/snapvisor.schema.json describes. */
export const ConfigForEditors = Type.Object(
  { ...Config.properties, targets: Type.Array(TargetConfigByKind, { default: [] }) },
  { additionalProperties: false },
);
