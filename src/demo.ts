/**
 * Demo mode: with no config file, provision the bundled VBoxManage simulator under ./data/demo
 * (kept across restarts, so the demo's snapshots persist like a real host's) and build the demo
 * configuration around it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createVboxLab, writeVboxWrapper } from '../test/labs/vboxmanage-sim/lab.ts';
import { demoConfig } from './config/demo.ts';
import { ConfigError, MIN_TOKEN_LENGTH, resolveConfig, type ResolvedConfig } from './config/load.ts';
import { DEFAULT_DATABASE } from './config/schema.ts';

export const DEMO_VMS = [
  { name: 'web-01', state: 'running' as const },
  { name: 'web-02', state: 'running' as const },
  { name: 'db-primary', state: 'running' as const, guest: { shutdownMs: 1500 } },
  { name: 'build-agent', state: 'poweroff' as const },
  { name: 'legacy-erp', state: 'saved' as const },
];

export async function startDemo(input: { env: NodeJS.ProcessEnv; cwd: string }): Promise<{ config: ResolvedConfig; token: string; generated: boolean }> {
  const given = input.env.SNAPVISOR_TOKEN;
  if (given !== undefined && given !== '' && [...given].length < MIN_TOKEN_LENGTH) {
    // Named by its variable, as the demo's user gave it; resolveConfig would only know it as 'demo-admin'.
    throw new ConfigError('demo', [{ path: 'SNAPVISOR_TOKEN', message: `is ${[...given].length} characters long; at least ${MIN_TOKEN_LENGTH} are required` }]);
  }
  const dir = path.resolve(input.cwd, 'data/demo');
  if (!existsSync(path.join(dir, 'vbox-state.json'))) {
    // 150 ms per 10 % step: slow enough to watch a progress bar, quick enough to click through.
    createVboxLab({ dir, vms: DEMO_VMS, stepMs: 150 });
  }
  // Written at every start: the wrapper names this install's Node and simulator, so a demo tree
  // copied or moved elsewhere (or run by another install) never drives the tree it was made in.
  const wrapper = writeVboxWrapper(dir);
  const demo = demoConfig({ vboxmanage: wrapper, token: input.env.SNAPVISOR_TOKEN, database: DEFAULT_DATABASE });
  const config = resolveConfig(demo.raw, 'demo', { env: input.env, baseDir: input.cwd }, true);
  return { config, token: demo.token, generated: demo.generated };
}
