/**
 * The second half of an engine-level crash test: a new engine on the database the first one left
 * (its job still `running`, as a SIGKILL would leave it), with a fresh provider; start-up recovery
 * and the retries run, and the job's final state is returned. The engine, store and provider are
 * closed at the test's teardown.
 */
import type { SnapshotProvider } from '../../providers/contract.ts';
import { registryOf, type TargetSpec } from '../../providers/index.ts';
import type { Job } from '../../src/domain/types.ts';
import type { EngineSettings } from '../../src/engine/core.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import type { silentLogger } from '../fixtures/fake-provider.ts';

type TapTest = { teardown(fn: () => unknown): void };

export async function recoverOnNewEngine(
  tt: TapTest,
  options: { database: string; spec: TargetSpec; provider: SnapshotProvider; log: ReturnType<typeof silentLogger>; settings: Partial<EngineSettings>; jobId: string },
): Promise<Job> {
  const store = openStore(options.database);
  const engine = createEngine({ store, registry: registryOf([{ spec: options.spec, provider: options.provider }]), log: options.log, settings: options.settings });
  tt.teardown(async () => {
    await engine.stop({ graceMs: 1_000 });
    store.close();
    await options.provider.close();
  });
  await engine.start();
  for (;;) {
    const job = await engine.waitForJob(options.jobId, 60_000);
    if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
  }
}
