/**
 * The raw baselines for the KVM benchmark: every virsh call is its own `ssh` process. Without
 * `controlMaster` each one opens a new TCP connection (key exchange and authentication each time),
 * the way a naive shell script does it; with it, the careful operator's way, OpenSSH multiplexes
 * every command over one master connection (ControlMaster=auto, a ControlPath socket in the bench's
 * directory, ControlPersist), so only the first command pays the handshake. `close()` stops the master.
 */
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface RawSsh {
  /** The argv of `ssh` for a remote command, for the report. */
  argv(remote: readonly string[]): string[];
  /** Runs one remote command in a fresh ssh process; resolves with stdout and wall-clock ms, rejects on a non-zero exit. */
  run(remote: readonly string[]): Promise<{ stdout: string; ms: number }>;
  /** Stops the ControlMaster connection, if any (`ssh -O exit`). */
  close(): Promise<void>;
}

export function rawSsh(
  dir: string,
  ssh: { host: string; port: number; username: string; privateKey: string; hostKey: string },
  options: { controlMaster?: boolean } = {},
): RawSsh {
  const key = path.join(dir, 'id_snaplab');
  writeFileSync(key, ssh.privateKey.endsWith('\n') ? ssh.privateKey : `${ssh.privateKey}\n`, { mode: 0o600 });
  chmodSync(key, 0o600);
  const knownHosts = path.join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${ssh.hostKey}\n`);
  // %C: a hash of host, port and user, so the socket path stays short (sun_path is ~104 bytes).
  const mux = options.controlMaster ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${path.join(dir, 'cm-%C')}`, '-o', 'ControlPersist=300'] : [];
  const destination = `${ssh.username}@${ssh.host}`;
  const base = [
    '-i', key, '-p', String(ssh.port),
    '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
    ...mux,
    destination,
  ];
  const argv = (remote: readonly string[]) => ['ssh', ...base, ...remote];
  return {
    argv,
    async close() {
      if (!options.controlMaster) return;
      await new Promise<void>((resolve) => {
        const p = spawn('ssh', ['-p', String(ssh.port), ...mux, '-O', 'exit', destination], { stdio: 'ignore' });
        p.on('error', () => resolve());
        p.on('close', () => resolve());
      });
    },
    run(remote) {
      // Only fixed words and lab-generated names reach the remote shell here (no quoting needed).
      for (const word of remote) if (!/^[A-Za-z0-9_.:/=+-]+$/.test(word)) throw new Error(`raw ssh: refusing to send ${JSON.stringify(word)} unquoted`);
      const started = performance.now();
      return new Promise((resolve, reject) => {
        const p = spawn('ssh', [...base, ...remote], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
        p.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
        p.on('error', reject);
        p.on('close', (code) => {
          const ms = performance.now() - started;
          if (code === 0) resolve({ stdout: out, ms });
          else reject(new Error(`ssh ${remote.join(' ')}: exit ${code}: ${err.trim()}`));
        });
      });
    },
  };
}
