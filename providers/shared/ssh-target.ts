/**
 * The `ssh:` block of a target whose tool runs on another host (KVM's virsh, VirtualBox's VBoxManage,
 * later Hyper-V's PowerShell), and the CommandRunner a target gets from it: the pooled SSH runner,
 * or local processes when there is no `ssh:`. The SSH runner connects on the first command, so a
 * target that is never used never opens a connection.
 */
import { Type, type Static } from 'typebox';
import type { Logger } from '../contract.ts';
import { powershellArgv, powershellEncoding, type PowerShellRequest, type RequestRunner, type WindowsShell } from './command-encoding.ts';
import { createLocalRunner, type CommandRunner } from './command-runner.ts';
import { openLocalStream } from './local-stream.ts';
import { powershellHostProtocol } from './powershell-host.ts';
import { createSessionRunner, type SessionRunner } from './session-pool.ts';
import type { SessionProtocol, StreamOpener } from './session-protocol.ts';
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

/**
 * The `ssh:` block of a Windows host (Hyper-V): the same keys, plus the account's default shell,
 * which decides the command's shape and length limit (8,191 characters under cmd.exe).
 */
export const WindowsSshTargetSchema = Type.Object(
  {
    ...SshTargetSchema.properties,
    /** Windows OpenSSH's DefaultShell for this account: cmd (its default) or powershell. */
    shell: Type.Optional(Type.Union([Type.Literal('cmd'), Type.Literal('powershell')], { default: 'cmd' })),
  },
  { additionalProperties: false },
);

export type WindowsSshTargetOptions = Static<typeof WindowsSshTargetSchema>;

/** What the schema cannot say: a way to authenticate. Names keys only, never values. */
export function sshProblems(ssh: SshTargetOptions | undefined): string[] {
  return ssh && ssh.privateKey === undefined && ssh.password === undefined ? ["option 'ssh' needs 'privateKey' or 'password'"] : [];
}

/** A target's way to run its tool: one process per request, and long-lived sessions where it can. */
export interface Transport<Request> {
  runner: RequestRunner<Request>;
  /** Starts a session's process (over the same SSH connection, or locally); absent: none possible. */
  openStream?: StreamOpener;
  close(): Promise<void>;
}

export type TargetTransport = Transport<readonly string[]> & { runner: CommandRunner };

export function createTargetTransport(ssh: SshTargetOptions | undefined, log: Logger): TargetTransport {
  if (!ssh) return { runner: createLocalRunner(), openStream: openLocalStream, close: async () => {} };
  const runner = createSshRunner(ssh, { log });
  return { runner, openStream: (command, opts) => runner.openStream(command, opts), close: () => runner.close() };
}

/**
 * The same transport with requests going through persistent sessions of `protocol` where it can
 * (see session-pool.ts); unchanged when it cannot open any.
 */
export function withSessions<Request>(
  transport: Transport<Request>,
  protocol: SessionProtocol<Request>,
  opts: { log: Logger; size?: number },
): Transport<Request> & { sessions?: SessionRunner<Request> } {
  const { openStream } = transport;
  if (openStream === undefined) return transport;
  const sessions = createSessionRunner({ protocol, open: openStream, oneShot: transport.runner, log: opts.log, ...(opts.size !== undefined ? { size: opts.size } : {}) });
  return {
    runner: sessions,
    openStream,
    sessions,
    async close() {
      await sessions.close();
      await transport.close();
    },
  };
}

export type PowerShellTransport = Transport<PowerShellRequest> & { sessions?: SessionRunner<PowerShellRequest> };

/**
 * A PowerShell target's runner: over SSH with the PowerShell encoding for the account's shell, or —
 * with no `ssh:` — a local `powershell`/`pwsh` process (the daemon on the Hyper-V host itself).
 * With `sessions`, requests go to long-lived PowerShell hosts (powershell-host.ts) where they can,
 * one-shot otherwise. Local sessions start through `sh`: none when the daemon runs on Windows.
 */
export function createPowerShellTransport(
  ssh: WindowsSshTargetOptions | undefined,
  opts: { provider: string; log: Logger; executable?: string; scriptOn?: 'command' | 'stdin'; sessions?: boolean },
): PowerShellTransport {
  const executable = opts.executable ?? 'powershell';
  const shell: WindowsShell = ssh?.shell ?? 'cmd';
  let base: Transport<PowerShellRequest>;
  if (!ssh) {
    const local = createLocalRunner();
    base = {
      runner: { run: (request, o = {}) => local.run(powershellArgv(request, { timeoutMs: o.timeoutMs ?? 120_000, executable }), o) },
      ...(process.platform !== 'win32' ? { openStream: openLocalStream } : {}),
      close: async () => {},
    };
  } else {
    const { shell: _shell, ...connection } = ssh;
    const encoding = powershellEncoding({ provider: opts.provider, shell, executable, ...(opts.scriptOn ? { scriptOn: opts.scriptOn } : {}) });
    const runner = createSshRunner(connection, { log: opts.log, encoding });
    base = { runner, openStream: (command, o) => runner.openStream(command, o), close: () => runner.close() };
  }
  return opts.sessions ? withSessions(base, powershellHostProtocol({ provider: opts.provider, shell, executable }), { log: opts.log }) : base;
}
