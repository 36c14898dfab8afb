/**
 * Options of a `kind: kvm` target, validated eagerly when the provider is created: unknown keys are
 * rejected and every problem names its key. Secrets (privateKey, password, passphrase) are never
 * echoed back in a problem: only key names are.
 */
import { Type, type Static } from 'typebox';
import { OFFLINE_RENAMES, OfflineOptionsSchema, offlineOptions, validOptions, type OfflineOptions } from '../shared/options.ts';
import { SshTargetSchema, sshProblems, type SshTargetOptions } from '../shared/ssh-target.ts';

export const PROVIDER = 'kvm';

export const KvmOptionsSchema = Type.Object(
  {
    /** libvirt connection URI as seen from the host virsh runs on. */
    uri: Type.Optional(Type.String({ minLength: 1, default: 'qemu:///system' })),
    /** Where virsh runs; absent = on this machine. */
    ssh: Type.Optional(SshTargetSchema),
    /**
     * Keep a few `virsh` processes running on the host and send them the commands (persistent
     * sessions: no process start and no new libvirt connection per command). false: one virsh
     * process per command. Falls back to that by itself where the host's virsh cannot be framed.
     */
    sessions: Type.Optional(Type.Boolean({ default: true })),
    /** Kill a virsh call that runs longer than this (remote `timeout` + local deadline). */
    commandTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 300 })),
    /** How a `memory` snapshot is stored: inside the qcow2 (internal) or as overlays + memory file (external). */
    snapshotStyle: Type.Optional(Type.Union([Type.Literal('internal'), Type.Literal('external')])),
    /**
     * `virsh shutdown`, then wait shutdownTimeoutSec; `virsh destroy` only with forcePowerOff (else the
     * snapshot fails with conflict). The old key `forceOff` is refused with a message naming the new one.
     */
    offline: Type.Optional(OfflineOptionsSchema),
    /**
     * Merging overlays of a shut-off domain (manual deletes, consolidate): libvirt 9.0 cannot blockcommit
     * offline and the SSH user cannot qemu-img the 0600 overlays, so 'start-paused' starts QEMU paused
     * (the guest never runs), merges, and destroys it again; 'refuse' answers `conflict`.
     */
    offlineMerge: Type.Optional(Type.Union([Type.Literal('start-paused'), Type.Literal('refuse')])),
    consolidate: Type.Optional(
      Type.Object(
        {
          /** External overlays per disk to keep; older ones are merged into the base image. */
          maxChainDepth: Type.Optional(Type.Integer({ minimum: 0, default: 1 })),
          /** A blockcommit copies data: it gets its own deadline instead of commandTimeoutSec. */
          timeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 3600 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type KvmOptionsInput = Static<typeof KvmOptionsSchema>;

export interface KvmOptions {
  uri: string;
  ssh: SshTargetOptions | undefined;
  sessions: boolean;
  commandTimeoutSec: number;
  snapshotStyle: 'internal' | 'external';
  offline: OfflineOptions;
  offlineMerge: 'start-paused' | 'refuse';
  consolidate: { maxChainDepth: number; timeoutSec: number };
}

/** Throws ProviderError `invalid` naming every bad, unknown or missing key. */
export function parseOptions(target: string, input: unknown): KvmOptions {
  const o: KvmOptionsInput = validOptions(PROVIDER, target, KvmOptionsSchema, input, (v) => sshProblems(v.ssh), OFFLINE_RENAMES);
  return {
    uri: o.uri ?? 'qemu:///system',
    ssh: o.ssh,
    sessions: o.sessions ?? true,
    commandTimeoutSec: o.commandTimeoutSec ?? 300,
    snapshotStyle: o.snapshotStyle ?? 'internal',
    offline: offlineOptions(o.offline),
    offlineMerge: o.offlineMerge ?? 'start-paused',
    consolidate: {
      maxChainDepth: o.consolidate?.maxChainDepth ?? 1,
      timeoutSec: o.consolidate?.timeoutSec ?? 3600,
    },
  };
}
