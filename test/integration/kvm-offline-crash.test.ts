/**
 * The offline mode's promise on KVM across a crash, against the real lab (libvirt + qemu over sshd):
 * an engine dies after it asked the running domain to shut down and the domain went off, before it
 * took the snapshot and started the domain again; a second engine on the same database recovers the
 * job and ends it with exactly one snapshot and the domain running again.
 *
 * The crash is simulated at the engine level, not with a daemon process: the first engine's offline
 * sequence is stopped for good inside its wait for the guest (its clock's sleep never returns, even
 * when aborted — the process that would have gone on is gone), the domain goes off meanwhile (the
 * lab guest has no OS and ignores the ACPI request: the test destroys it, as a guest finishing its
 * shutdown would leave it), and the engine is stopped, which leaves the job `running` for recovery
 * exactly as a killed daemon does. The second engine opens the same database file afresh.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { markerForJob } from '../../providers/contract.ts';
import { registryOf } from '../../providers/index.ts';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import type { Clock } from '../../providers/shared/offline.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createKvmLab, LAB_SESSIONS } from '../labs/kvm/lab.ts';
import { until } from '../e2e/daemon.ts';
import { recoverOnNewEngine } from './recovering-engine.ts';

const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-offline-crash-'));
chmodSync(dir, 0o755);
const lab = await createKvmLab({ dir, domains: [{ name: 'cold', running: true }] });
const log = silentLogger();
const database = join(dir, 'snapvisor.db');
const settings = { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 3, backoff: { initialMs: 50, maxMs: 100 } };
const providerOptions = { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, sessions: LAB_SESSIONS, offline: { forcePowerOff: true, shutdownTimeoutSec: 600 } };
t.teardown(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const domstate = async () => (await lab.virsh('domstate', '--domain', lab.domainName('cold'))).stdout.trim();

t.test('engine gone after the shutdown, domain off: the recovering engine takes one snapshot and starts the domain again', async (tt) => {
  // 1. The first engine: its offline sequence waits for the guest through this clock, forever.
  let waitingForGuest = false;
  const stuck: Clock = {
    now: () => Date.now(),
    sleep: () => {
      waitingForGuest = true;
      return new Promise<void>(() => {});
    },
  };
  const provider1 = createKvmProvider('lab', providerOptions, { log, clock: stuck });
  const store1 = openStore(database);
  const engine1 = createEngine({ store: store1, registry: registryOf([{ spec: { name: 'lab', kind: 'kvm', demo: false, concurrency: 2, options: {} }, provider: provider1 }]), log, settings });
  await engine1.start();
  const vm = (await engine1.listVms({ limit: 50, name: lab.domainName('cold') })).items[0]!;
  const { job } = await engine1.submit({ kind: 'snapshot.create', vmId: vm.id, name: 'cold-copy', description: '', mode: 'offline' }, { principal: 'test', requestHash: 'h1' });
  await until('the sequence waiting for the guest', async () => waitingForGuest, 60_000, 50);
  tt.equal(await domstate(), 'running', 'asked to shut down; the lab guest ignores it');
  // The guest goes down while no engine is there to see it.
  await lab.virsh('destroy', '--domain', lab.domainName('cold'));
  tt.equal(await domstate(), 'shut off');
  await engine1.stop({ graceMs: 0 });
  tt.equal((await store1.jobs.get(job.id))?.state, 'running', 'left running, as a killed daemon leaves it');
  store1.close();
  await provider1.close();

  // 2. The second engine, on the same database: recovery, then the retry.
  const provider2 = createKvmProvider('lab', providerOptions, { log });
  const final = await recoverOnNewEngine(tt, { database, spec: { name: 'lab', kind: 'kvm', demo: false, concurrency: 2, options: {} }, provider: provider2, log, settings, jobId: job.id });
  tt.equal(final.state, 'succeeded', JSON.stringify(final.error));
  const marked = (await provider2.listSnapshots(lab.domainUuid('cold'), { signal: new AbortController().signal, progress: () => {}, log })).filter((s) => s.marker === markerForJob(job.id));
  tt.equal(marked.length, 1, 'exactly one snapshot carries the job marker');
  tt.equal(await domstate(), 'running', 'the domain runs again, as before the job');
});
