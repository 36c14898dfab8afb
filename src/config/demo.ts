/**
 * The configuration used when no config file is found: a newcomer runs `npm start` on a machine
 * with no hypervisor and gets a daemon with real (simulated) VirtualBox VMs to snapshot.
 * Everything it makes is marked demo in logs and API output.
 */
import { randomBytes } from 'node:crypto';

export interface DemoInputs {
  /** Path of the bundled VBoxManage simulator's wrapper. */
  vboxmanage: string;
  /** SNAPVISOR_TOKEN when set; otherwise a token is generated and printed once at start. */
  token?: string | undefined;
  database: string;
}

export interface DemoConfig {
  raw: Record<string, unknown>;
  token: string;
  generated: boolean;
}

export const DEMO_TARGET = 'demo-vbox';

export function demoConfig(inputs: DemoInputs): DemoConfig {
  const generated = inputs.token === undefined || inputs.token === '';
  const token = generated ? `svd_${randomBytes(24).toString('base64url')}` : inputs.token!;
  return {
    token,
    generated,
    raw: {
      database: inputs.database,
      tokens: [{ name: 'demo-admin', value: token, scopes: ['read', 'write', 'admin'] }],
      // The simulator answers in milliseconds; a short sync keeps the demo lively.
      engine: { syncIntervalSec: 30 },
      targets: [{ name: DEMO_TARGET, kind: 'virtualbox', concurrency: 2, vboxmanage: inputs.vboxmanage, commandTimeoutSec: 60 }],
    },
  };
}
