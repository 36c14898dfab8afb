/**
 * The policies integration tests' daemon: the in-process API, the real engine and store, and the
 * real VirtualBox adapter against the VBoxManage simulator. The scheduler is off unless a test
 * turns it on (runs are started by hand there); `now` moves the engine's clock.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { buildApp } from '../../src/api/app.ts';
import type { PolicyRun } from '../../src/domain/policy.ts';
import type { EngineSettings } from '../../src/engine/core.ts';
import { createEngine, type Engine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createVboxLab, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { sha256 } from './api-helper.ts';

export type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

export const WRITER = 'wr1ter-t0ken-value-2b9e-5e8d0b6a9f3c';
export const READER = 're4der-t0ken-value-8e0c-5e8d0b6a9f3c';

export async function daemonOn(t: TapTest, lab: VboxLab, database: string, options: { scheduler?: EngineSettings['scheduler']; now?: () => Date } = {}) {
  const log = silentLogger();
  const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 30 }, { log });
  const store = openStore(database);
  const registry = registryOf([{ spec: { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 4, options: {} }, provider }]);
  const engine = createEngine({
    store,
    registry,
    log,
    settings: { workerPollMs: 10, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 20, maxMs: 50 }, scheduler: options.scheduler ?? { enabled: false, jitterMs: 0 } },
    ...(options.now ? { now: options.now } : {}),
  });
  await engine.start();
  const app = await buildApp({
    engine,
    auth: {
      tokens: [
        { name: 'writer', sha256: sha256(WRITER), scopes: ['write'] },
        { name: 'reader', sha256: sha256(READER), scopes: ['read'] },
      ],
    },
    version: '0.0.0-test',
  });
  let closed = false;
  const close = async (graceMs = 2000) => {
    if (closed) return;
    closed = true;
    await app.close();
    await engine.stop({ graceMs });
    await registry.close();
    store.close();
  };
  t.teardown(() => close());
  const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown, token = WRITER) =>
    app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
  const vmId = async (name: string) => (await engine.listVms({ limit: 10, name })).items.find((v) => v.name === name)!.id;
  return { engine, app, store, call, vmId, close };
}

export function setupLab(t: TapTest) {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-policies-'));
  const lab = createVboxLab({ dir, stepMs: 1, vms: [{ name: 'web01', state: 'running' }, { name: 'web02', state: 'running' }, { name: 'db01', state: 'poweroff' }] });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { lab, database: join(dir, 'snapvisor.db') };
}

/** The run once it has ended (woken by its policy-run event; no sleeping). */
export async function ended(engine: Engine, policyId: string, runId: string): Promise<PolicyRun> {
  let wake!: (run: PolicyRun) => void;
  const done = new Promise<PolicyRun>((resolve) => (wake = resolve));
  const unsubscribe = engine.subscribe((e) => {
    if (e.type === 'policy-run' && e.run.id === runId && e.run.state !== 'running') wake(e.run);
  });
  try {
    const now = (await engine.listPolicyRuns(policyId, { limit: 1000 })).items.find((r) => r.id === runId);
    if (now && now.state !== 'running') return now;
    return await done;
  } finally {
    unsubscribe();
  }
}

export const policyBody = (over: Record<string, unknown> = {}) => ({
  name: 'nightly',
  selector: { namePattern: 'web01' },
  schedule: '30 2 * * *',
  timezone: 'Europe/Berlin',
  mode: 'memory',
  retention: { keepLast: 2 },
  ...over,
});

