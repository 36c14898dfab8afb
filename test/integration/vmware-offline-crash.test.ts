/**
 * The offline mode's promise on VMware across a crash, against vcsim: an engine dies after the VM was
 * shut down and the snapshot taken, before the VM was powered on again; a second engine on the same
 * database recovers the job and ends it with exactly one snapshot and the VM powered on.
 *
 * The crash is simulated at the engine level: the first engine talks to vcsim through a TCP relay
 * (vcsim serves plain HTTP here) that swallows the PowerOnVM_Task request and everything after it on
 * that connection — the request never reaches vCenter, as when the daemon dies before sending it —
 * and the engine is stopped, which leaves the job `running` for recovery exactly as a killed daemon
 * does (the swallowed call keeps its own signal: a restart is never cancelled). The second engine
 * talks to vcsim directly and opens the same database file afresh.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { markerForJob } from '../../providers/contract.ts';
import { registryOf } from '../../providers/index.ts';
import { createVmwareProvider } from '../../providers/vmware/index.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { startVcsim } from '../labs/vcsim/lab.ts';
import { until } from '../e2e/daemon.ts';
import { recoverOnNewEngine } from './recovering-engine.ts';

const root = mkdtempSync(join(tmpdir(), 'snapvisor-vmware-offline-crash-'));
const lab = await startVcsim({ dir: join(root, 'vcsim'), tls: false });
const log = silentLogger();
const database = join(root, 'snapvisor.db');
const settings = { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 3, backoff: { initialMs: 50, maxMs: 100 } };
const sockets = new Set<Socket>();

/** A relay to vcsim that swallows the first PowerOnVM_Task request and the rest of its connection. */
let swallowed = false;
const relay = createServer((client) => {
  const upstream = createConnection({ host: '127.0.0.1', port: lab.port });
  sockets.add(client).add(upstream);
  let dead = false;
  client.on('data', (chunk: Buffer) => {
    if (dead) return;
    if (!swallowed && chunk.includes('PowerOnVM_Task')) {
      swallowed = true;
      dead = true;
      return;
    }
    upstream.write(chunk);
  });
  upstream.on('data', (chunk: Buffer) => {
    if (!dead) client.write(chunk);
  });
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
});
await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
const relayPort = (relay.address() as AddressInfo).port;

t.teardown(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => relay.close(resolve));
  await lab.stop();
  rmSync(root, { recursive: true, force: true });
});

const optionsVia = (port: number) => ({
  url: `http://127.0.0.1:${port}/sdk`,
  username: lab.username,
  password: lab.password,
  requestTimeoutSec: 30,
  taskTimeoutSec: 30,
  offline: { shutdownTimeoutSec: 30 },
});
const spec = { name: 'lab', kind: 'vmware' as const, demo: false, concurrency: 2, options: {} };
const ctx = () => ({ signal: new AbortController().signal, progress: () => {}, log });


t.test('engine gone after the snapshot, before the power-on: the recovering engine powers the VM on, one snapshot', async (tt) => {
  const direct = createVmwareProvider('lab', optionsVia(lab.port), { log });
  tt.teardown(() => direct.close());
  const powerOf = async (id: string) => (await direct.listVms(ctx())).find((v) => v.providerVmId === id)?.rawPowerState;

  const provider1 = createVmwareProvider('lab', optionsVia(relayPort), { log });
  const store1 = openStore(database);
  const engine1 = createEngine({ store: store1, registry: registryOf([{ spec, provider: provider1 }]), log, settings });
  await engine1.start();
  const vm = (await engine1.listVms({ limit: 50, name: 'DC0_H0_VM0' })).items[0]!;
  tt.equal(await powerOf(vm.providerVmId), 'poweredOn', 'running before the job');
  const { job } = await engine1.submit({ kind: 'snapshot.create', vmId: vm.id, name: 'cold', description: '', mode: 'offline' }, { principal: 'test', requestHash: 'h1' });
  await until('the power-on swallowed', async () => swallowed, 60_000, 50);
  tt.equal(await powerOf(vm.providerVmId), 'poweredOff', 'off when the engine dies');
  await engine1.stop({ graceMs: 0 });
  tt.equal((await store1.jobs.get(job.id))?.state, 'running', 'left running, as a killed daemon leaves it');
  store1.close();

  const provider2 = createVmwareProvider('lab', optionsVia(lab.port), { log });
  const final = await recoverOnNewEngine(tt, { database, spec, provider: provider2, log, settings, jobId: job.id });
  tt.equal(final.state, 'succeeded', JSON.stringify(final.error));
  const marked = (await direct.listSnapshots(vm.providerVmId, ctx())).filter((s) => s.marker === markerForJob(job.id));
  tt.equal(marked.length, 1, 'exactly one snapshot carries the job marker');
  tt.equal(await powerOf(vm.providerVmId), 'poweredOn', 'powered on again, as before the job');
});
