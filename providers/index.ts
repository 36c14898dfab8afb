/**
 * Registry: provider kind → factory. Adapters are imported lazily so a heavy SDK (Azure, SOAP)
 * is loaded only when a target of that kind is configured.
 */
import { isDeepStrictEqual } from 'node:util';
import { ProviderError, capabilityMismatches, type ProviderDeps, type ProviderKind, type SnapshotProvider } from './contract.ts';

/** A configured target as the registry sees it: its kind-specific options stay opaque here. */
export interface TargetSpec {
  name: string;
  kind: ProviderKind;
  /** Part of the bundled demo configuration. */
  demo: boolean;
  /** Most jobs running against this target at once. */
  concurrency: number;
  /** Kind-specific options, validated by the adapter's own schema. */
  options: Record<string, unknown>;
}

export interface RegisteredTarget {
  spec: TargetSpec;
  provider: SnapshotProvider;
}

export interface ProviderRegistry {
  /** Throws ProviderError not_found for an unknown target. */
  get(target: string): SnapshotProvider;
  list(): RegisteredTarget[];
  close(): Promise<void>;
}

type Loader = () => Promise<(target: string, options: Record<string, unknown>, deps: ProviderDeps) => SnapshotProvider>;

const LOADERS: Partial<Record<ProviderKind, Loader>> = {
  virtualbox: async () => (await import('./virtualbox/index.ts')).default,
  kvm: async () => (await import('./kvm/index.ts')).default,
  vmware: async () => (await import('./vmware/index.ts')).default,
  hyperv: async () => (await import('./hyperv/index.ts')).default,
  azure: async () => (await import('./azure/index.ts')).default,
};

export function supportedKinds(): ProviderKind[] {
  return Object.keys(LOADERS) as ProviderKind[];
}

export async function createRegistry(specs: readonly TargetSpec[], deps: ProviderDeps): Promise<ProviderRegistry> {
  const entries: RegisteredTarget[] = [];
  for (const spec of specs) entries.push({ spec, provider: await createProvider(spec, deps) });
  return registryOf(entries);
}

/** One target's provider: the adapter's factory validates the options eagerly (ProviderError `invalid`). */
async function createProvider(spec: TargetSpec, deps: ProviderDeps): Promise<SnapshotProvider> {
  const load = LOADERS[spec.kind];
  if (!load) throw new ProviderError(spec.kind, 'unsupported', `target '${spec.name}': provider kind '${spec.kind}' is not available in this build`);
  const factory = await load();
  return factory(spec.name, spec.options, { log: deps.log.child({ target: spec.name, provider: spec.kind }) });
}

/** A provider could not be made for the target at `index` of the new list (its options, its kind). */
export class TargetSetupError extends Error {
  override readonly name = 'TargetSetupError';
  constructor(
    readonly index: number,
    readonly target: string,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/** What a new target list does to a registry, built but not applied: nothing of the current one is closed. */
export interface RegistryChange {
  registry: ProviderRegistry;
  added: string[];
  /** Any field of the spec differs. A change of `concurrency` alone keeps the provider (and its connections). */
  changed: string[];
  removed: string[];
  unchanged: string[];
  /** Providers of the current registry that the new one no longer holds: close each once no job or sync uses it. */
  retired: RegisteredTarget[];
  /** Closes the providers made for this change; call it when the change is not applied. */
  discard(): Promise<void>;
}

/**
 * The registry for a new list of targets, reusing every provider whose target kept its kind and
 * options (deep-equal, secrets as resolved): no reconnection, its SSH connections and sessions stay.
 * Added and changed targets get new providers. On any error the providers made so far are closed
 * and a TargetSetupError names the target.
 */
export async function reconfigureRegistry(current: ProviderRegistry, specs: readonly TargetSpec[], deps: ProviderDeps): Promise<RegistryChange> {
  const before = new Map(current.list().map((e) => [e.spec.name, e]));
  const made: SnapshotProvider[] = [];
  const discard = async () => {
    await Promise.allSettled(made.map((p) => p.close()));
  };
  const change: Omit<RegistryChange, 'registry' | 'discard'> = { added: [], changed: [], removed: [], unchanged: [], retired: [] };
  const entries: RegisteredTarget[] = [];
  try {
    for (const [index, spec] of specs.entries()) {
      const old = before.get(spec.name);
      if (old && isDeepStrictEqual(old.spec, spec)) {
        change.unchanged.push(spec.name);
        entries.push(old);
        continue;
      }
      (old ? change.changed : change.added).push(spec.name);
      if (old && old.spec.kind === spec.kind && old.spec.demo === spec.demo && isDeepStrictEqual(old.spec.options, spec.options)) {
        entries.push({ spec, provider: old.provider });
        continue;
      }
      if (old) change.retired.push(old);
      let provider: SnapshotProvider;
      try {
        provider = await createProvider(spec, deps);
        made.push(provider);
        checkCapabilities(spec, provider);
      } catch (err) {
        throw new TargetSetupError(index, spec.name, err);
      }
      entries.push({ spec, provider });
    }
    const names = new Set(specs.map((s) => s.name));
    for (const old of before.values()) {
      if (names.has(old.spec.name)) continue;
      change.removed.push(old.spec.name);
      change.retired.push(old);
    }
    return { ...change, registry: registryOf(entries), discard };
  } catch (err) {
    await discard();
    throw err;
  }
}

/**
 * A registry around providers already built (createRegistry's result, or test fakes). Refuses a
 * provider whose optional methods and declared capabilities disagree: the engine and the API decide
 * from the capabilities alone, so a mismatch would be a 202 for a call that cannot run, or a
 * capability nobody can use.
 */
export function registryOf(targets: readonly RegisteredTarget[]): ProviderRegistry {
  for (const { spec, provider } of targets) checkCapabilities(spec, provider);
  const entries = new Map(targets.map((t) => [t.spec.name, t]));
  return {
    get(target) {
      const entry = entries.get(target);
      if (!entry) throw new ProviderError('registry', 'not_found', `no target named '${target}'`);
      return entry.provider;
    },
    list: () => [...entries.values()],
    async close() {
      await Promise.allSettled([...entries.values()].map((e) => e.provider.close()));
    },
  };
}

function checkCapabilities(spec: TargetSpec, provider: SnapshotProvider): void {
  const problems = capabilityMismatches(provider);
  if (problems.length > 0) {
    throw new ProviderError(spec.kind, 'internal', `target '${spec.name}': the ${spec.kind} provider ${problems.join('; ')}`);
  }
}
