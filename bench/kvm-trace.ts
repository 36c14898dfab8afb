/**
 * Where the adapter's time goes: the KVM provider driven directly (no daemon) over a pooled SSH
 * runner that records every remote command's virsh subcommand and wall-clock time — with one virsh
 * process per command, or through persistent virsh sessions (the adapter's default).
 */
import { markerForJob, type CallContext, type SnapshotProvider } from '../providers/contract.ts';
import { createKvmProvider } from '../providers/kvm/index.ts';
import { virshSessionProtocol } from '../providers/kvm/virsh-session.ts';
import { READ_PARALLELISM } from '../providers/kvm/virsh.ts';
import type { CommandRunner } from '../providers/shared/command-runner.ts';
import { createTargetTransport, withSessions } from '../providers/shared/ssh-target.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';

export interface TracedCall { op: 'create' | 'delete'; command: string; ms: number }

export function tracedProvider(ssh: { host: string; port: number; username: string; privateKey: string; hostKey: string }, uri: string, opts: { sessions: boolean }) {
  const log = silentLogger();
  const base = createTargetTransport(ssh, log);
  // The same composition the adapter makes for itself (providers/kvm/index.ts), outside it so that every call can be timed.
  const transport = opts.sessions ? withSessions(base, virshSessionProtocol(uri), { log, size: READ_PARALLELISM }) : base;
  let op: TracedCall['op'] = 'create';
  const calls: TracedCall[] = [];
  const runner: CommandRunner = {
    async run(argv, options) {
      const t0 = performance.now();
      try {
        return await transport.runner.run(argv, options);
      } finally {
        // argv is ['virsh', '-c', uri, '<subcommand>', …] or a helper such as ['test', '-e', path].
        calls.push({ op, command: argv[0] === 'virsh' ? (argv[3] ?? 'virsh') : (argv[0] ?? '?'), ms: performance.now() - t0 });
      }
    },
  };
  const provider: SnapshotProvider = createKvmProvider('bench-trace', { uri, sessions: false }, { log, runner });
  const ctx: CallContext = { signal: new AbortController().signal, progress: () => {}, log };
  return {
    calls,
    /** One create + delete of an internal memory snapshot, as the two jobs would call the adapter. */
    async cycle(uuid: string, name: string): Promise<{ createMs: number; deleteMs: number }> {
      op = 'create';
      const t0 = performance.now();
      const snap = await provider.createSnapshot(uuid, { name, description: '', mode: 'memory', marker: markerForJob(`bench-${name}`) }, ctx);
      const createMs = performance.now() - t0;
      op = 'delete';
      const t1 = performance.now();
      await provider.deleteSnapshot(uuid, snap.providerRef, { children: false }, ctx);
      return { createMs, deleteMs: performance.now() - t1 };
    },
    async close() {
      await provider.close();
      await transport.close();
    },
  };
}
