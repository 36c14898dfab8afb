/**
 * The SSH CommandRunner for a target. The runner connects lazily (on the first command), so a
 * target that is never used never opens a connection.
 */
import type { Logger } from '../contract.ts';
import type { CommandRunner } from '../shared/command-runner.ts';
import { createSshRunner } from '../shared/ssh.ts';
import type { KvmSshOptions } from './options.ts';

export function createSshTransport(ssh: KvmSshOptions, log: Logger): { runner: CommandRunner; close(): Promise<void> } {
  const runner = createSshRunner(ssh, { log });
  return { runner, close: () => runner.close() };
}
