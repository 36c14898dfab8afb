/**
 * Options of a `kind: virtualbox` target, validated eagerly when the provider is created:
 * unknown keys are rejected and every problem names its key.
 */
import { Type, type Static } from 'typebox';
import { OfflineOptionsSchema, offlineOptions, validOptions, type OfflineOptions } from '../shared/options.ts';
import { SshTargetSchema, sshProblems, type SshTargetOptions } from '../shared/ssh-target.ts';

export const PROVIDER = 'virtualbox';

export const VirtualBoxOptionsSchema = Type.Object(
  {
    /** VBoxManage executable: a name looked up on PATH, or a path (on the SSH host when `ssh` is set). */
    vboxmanage: Type.Optional(Type.String({ minLength: 1, default: 'VBoxManage' })),
    /** Where VBoxManage runs; absent = on this machine. */
    ssh: Type.Optional(SshTargetSchema),
    /** Kill a VBoxManage call that runs longer than this. */
    commandTimeoutSec: Type.Optional(Type.Number({ exclusiveMinimum: 0, default: 600 })),
    offline: Type.Optional(OfflineOptionsSchema),
  },
  { additionalProperties: false },
);

export type VirtualBoxOptionsInput = Static<typeof VirtualBoxOptionsSchema>;

export interface VirtualBoxOptions {
  vboxmanage: string;
  ssh: SshTargetOptions | undefined;
  commandTimeoutSec: number;
  offline: OfflineOptions;
}

/** Throws ProviderError `invalid` naming every bad, unknown or missing key. */
export function parseOptions(target: string, input: unknown): VirtualBoxOptions {
  const o: VirtualBoxOptionsInput = validOptions(PROVIDER, target, VirtualBoxOptionsSchema, input, (v) => sshProblems(v.ssh));
  return {
    vboxmanage: o.vboxmanage ?? 'VBoxManage',
    ssh: o.ssh,
    commandTimeoutSec: o.commandTimeoutSec ?? 600,
    offline: offlineOptions(o.offline),
  };
}
