/**
 * Registry: provider kind → factory. Adapters are imported lazily so a heavy SDK (Azure, SOAP)
 * is loaded only when a target of that kind is configured.
 */
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
};

export function supportedKinds(): ProviderKind[] {
  return Object.keys(LOADERS) as ProviderKind[];
}

export async function createRegistry(specs: readonly TargetSpec[], deps: ProviderDeps): Promise<ProviderRegistry> {
  const entries: RegisteredTarget[] = [];
  for (const spec of specs) {
    const load = LOADERS[spec.kind];
    if (!load) throw new ProviderError(spec.kind, 'unsupported', `target '${spec.name}': provider kind '${spec.kind}' is not available in this build`);
    const factory = await load();
    const provider = factory(spec.name, spec.options, { log: deps.log.child({ target: spec.name, provider: spec.kind }) });
    entries.push({ spec, provider });
  }
  return registryOf(entries);
}

/**
 * A registry around providers already built (createRegistry's result, or test fakes). Refuses a
 * provider whose optional methods and declared capabilities disagree: the engine and the API decide
 * from the capabilities alone, so a mismatch would be a 202 for a call that cannot run, or a
 * capability nobody can use.
 */
export function registryOf(targets: readonly RegisteredTarget[]): ProviderRegistry {
  for (const { spec, provider } of targets) {
    const problems = capabilityMismatches(provider);
    if (problems.length > 0) {
      throw new ProviderError(spec.kind, 'internal', `target '${spec.name}': the ${spec.kind} provider ${problems.join('; ')}`);
    }
  }
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
