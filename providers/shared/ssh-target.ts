/**
 * The `ssh:` block of a target whose tool runs on another host (KVM's virsh, VirtualBox's VBoxManage,
 * later Hyper-V's PowerShell), and the CommandRunner a target gets from it: the pooled SSH runner,
 * or local processes when there is no `ssh:`. The SSH runner connects on the first command, so a
 * target that is never used never opens a connection.
 */
import { Type, type Static } from 'typebox';
import type { Logger } from '../contract.ts';
import { createLocalRunner, type CommandRunner } from './command-runner.ts';
import { createSshRunner } from './ssh.ts';

export const SshTargetSchema = Type.Object(
  {
    host: Type.String({ minLength: 1 }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    username: Type.String({ minLength: 1 }),
    privateKey: Type.Optional(Type.String({ minLength: 1 })),
    passphrase: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    /** "SHA256:<base64>" fingerprint or a known_hosts / public-key line: pinned, never learned. */
    hostKey: Type.String({ minLength: 1 }),
    maxChannels: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
    keepaliveMs: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);

export type SshTargetOptions = Static<typeof SshTargetSchema>;

/** What the schema cannot say: a way to authenticate. Names keys only, never values. */
export function sshProblems(ssh: SshTargetOptions | undefined): string[] {
  return ssh && ssh.privateKey === undefined && ssh.password === undefined ? ["option 'ssh' needs 'privateKey' or 'password'"] : [];
}

export interface TargetTransport {
  runner: CommandRunner;
  close(): Promise<void>;
}

export function createTargetTransport(ssh: SshTargetOptions | undefined, log: Logger): TargetTransport {
  if (!ssh) return { runner: createLocalRunner(), close: async () => {} };
  const runner = createSshRunner(ssh, { log });
  return { runner, close: () => runner.close() };
}
