/**
 * The engine driving the KVM adapter against the real lab (libvirt + qemu over SSH), on an
 * in-memory store, for one running domain: what the KVM engine-level tests share.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import type { Job } from '../../src/domain/types.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createKvmLab, LAB_SESSIONS } from '../labs/kvm/lab.ts';

type TapTest = typeof t;

export async function kvmEngine(t: TapTest, domain: string, options: { consolidate?: { maxChainDepth: number }; jobWaitMs?: number } = {}) {
  const dir = mkdtempSync(join('/tmp', `snapvisor-kvm-${domain}-`));
  chmodSync(dir, 0o755);
  const lab = await createKvmLab({ dir, domains: [{ name: domain, running: true }] });
  const log = silentLogger();
  const provider = createKvmProvider(
    'lab',
    { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, sessions: LAB_SESSIONS, ...(options.consolidate ? { consolidate: options.consolidate } : {}) },
    { log },
  );
  const store = openStore(':memory:');
  const registry = registryOf([{ spec: { name: 'lab', kind: 'kvm', demo: false, concurrency: 2, options: {} }, provider }]);
  const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 50, maxMs: 100 } } });
  await engine.start();
  t.teardown(async () => {
    await engine.stop({ graceMs: 100 });
    store.close();
    await provider.close();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const vm = (await engine.listVms({ limit: 50, name: lab.domainName(domain) })).items[0]!.id;
  let n = 0;
  const meta = () => ({ principal: 'test', requestHash: `h${++n}` });
  const final = async (job: Job): Promise<Job> => {
    for (;;) {
      const j = await engine.waitForJob(job.id, options.jobWaitMs ?? 60_000);
      if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j;
    }
  };
  return { lab, provider, store, engine, vm, meta, final };
}
