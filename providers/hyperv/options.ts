/**
 * Options of a `kind: hyperv` target, validated eagerly when the provider is created: unknown keys
 * are rejected and every problem names its key (never its value: `ssh.password` may be wrong).
 */
import { Type, type Static } from 'typebox';
import { OfflineOptionsSchema, offlineOptions, validOptions, type OfflineOptions } from '../shared/options.ts';
import { WindowsSshTargetSchema, sshProblems, type WindowsSshTargetOptions } from '../shared/ssh-target.ts';

export const PROVIDER = 'hyperv';

export const HyperVOptionsSchema = Type.Object(
  {
    /**
     * The Windows host, reached with Windows OpenSSH; `shell` is the account's DefaultShell (cmd, the
     * default, or powershell). Absent: PowerShell runs on this machine (the daemon on the host itself).
     */
    ssh: Type.Optional(WindowsSshTargetSchema),
    /** The PowerShell executable on the host: Windows PowerShell 5.1 (`powershell`), where the Hyper-V module lives, or `pwsh`. */
    powershell: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]+$', default: 'powershell' })),
    /**
     * Keep a few PowerShell hosts running on the Windows host and send them the scripts (persistent
     * sessions: no PowerShell start and no Hyper-V module import per call). false: one PowerShell
     * process per call. Falls back to that by itself where the host's PowerShell cannot run one.
     */
    sessions: Type.Optional(Type.Boolean({ default: true })),
    /** Kill a PowerShell call that runs longer than this (the script's own watchdog ends it on the host). */
    commandTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 600 })),
    /** How long a checkpoint, revert or delete waits for an earlier removal's disk merge before giving up (transient). */
    mergeWaitSec: Type.Optional(Type.Number({ minimum: 0, default: 300 })),
    offline: Type.Optional(OfflineOptionsSchema),
  },
  { additionalProperties: false },
);

export type HyperVOptionsInput = Static<typeof HyperVOptionsSchema>;

export interface HyperVOptions {
  ssh: WindowsSshTargetOptions | undefined;
  powershell: string;
  sessions: boolean;
  commandTimeoutSec: number;
  mergeWaitSec: number;
  offline: OfflineOptions;
}

/** Throws ProviderError `invalid` naming every bad, unknown or missing key. */
export function parseOptions(target: string, input: unknown): HyperVOptions {
  const o: HyperVOptionsInput = validOptions(PROVIDER, target, HyperVOptionsSchema, input, (v) => sshProblems(v.ssh));
  return {
    ssh: o.ssh,
    powershell: o.powershell ?? 'powershell',
    sessions: o.sessions ?? true,
    commandTimeoutSec: o.commandTimeoutSec ?? 600,
    mergeWaitSec: o.mergeWaitSec ?? 300,
    offline: offlineOptions(o.offline),
  };
}
