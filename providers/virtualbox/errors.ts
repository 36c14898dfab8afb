/**
 * The one place where VBoxManage failures become ProviderErrors (STYLE §4: map transport failures in
 * one place per provider). Messages carry the first error line only: never the whole stderr, never
 * the environment.
 */
import { ProviderError } from '../contract.ts';
import type { RunResult } from '../shared/command-runner.ts';
import { firstLine } from '../shared/stderr.ts';
import { fromTransportError, type CallInfo } from '../shared/transport-errors.ts';
import { PROVIDER } from './options.ts';
import { parseVboxError } from './parse.ts';

export type { CallInfo };

const LOCKED = 'is already locked by a session';
/** VBoxManage's `0%...10%...` progress output on stderr: never the reason. */
const PROGRESS_LINE = /^\d+%/;

/**
 * Machine states VirtualBox passes through on its own (§3.3's `<State>` names). A refusal in one
 * of them means "not now", not "never": after a crash our own earlier command may still be
 * finishing, so the engine must retry later rather than fail the job.
 */
const TRANSIENT_MACHINE_STATES = new Set([
  'Snapshotting',
  'OnlineSnapshotting',
  'LiveSnapshotting',
  'RestoringSnapshot',
  'DeletingSnapshot',
  'DeletingSnapshotOnline',
  'DeletingSnapshotPaused',
  'Saving',
  'Restoring',
  'Starting',
  'Stopping',
  'SettingUp',
  'Teleporting',
  'TeleportingIn',
  'TeleportingPausedVM',
]);

function inTransientState(messages: readonly string[]): boolean {
  return messages.some((m) => {
    const state = /\(machine state: (\w+)\)/.exec(m)?.[1];
    return state !== undefined && TRANSIENT_MACHINE_STATES.has(state);
  });
}

/** A finished VBoxManage call that failed: non-zero exit, or exit 0 with an `error:` line (§1.2). */
export function fromVboxFailure(result: RunResult, call: CallInfo): ProviderError {
  const parsed = parseVboxError(result.stderr);
  const reason = parsed?.message ?? firstLine(result.stderr, PROGRESS_LINE) ?? `VBoxManage exited with code ${result.exitCode}`;
  const message = `${call.what}: ${reason}`;
  const nativeCode = parsed?.code;
  const opts = nativeCode === undefined ? {} : { nativeCode };
  if (parsed?.messages.some((m) => m.includes(LOCKED))) {
    // Another session holds the machine for a moment (Packer retries these too).
    return new ProviderError(PROVIDER, 'transient', message, { ...opts, retry: 'transient' });
  }
  switch (nativeCode) {
    case 'VBOX_E_OBJECT_NOT_FOUND':
      return new ProviderError(PROVIDER, 'not_found', message, opts);
    case 'VBOX_E_INVALID_VM_STATE':
      if (inTransientState(parsed?.messages ?? [])) return new ProviderError(PROVIDER, 'transient', message, { ...opts, retry: 'transient' });
      return new ProviderError(PROVIDER, 'conflict', message, opts);
    case 'VBOX_E_INVALID_OBJECT_STATE':
      return new ProviderError(PROVIDER, 'conflict', message, opts);
    default:
      break;
  }
  if (parsed?.messages.some((m) => m.includes('is not currently running'))) {
    return new ProviderError(PROVIDER, 'conflict', message, opts);
  }
  return new ProviderError(PROVIDER, 'internal', message, opts);
}

/** The call did not finish with an exit code (timeout, abort, spawn failure) or threw something else. */
export function fromRunError(err: unknown, call: CallInfo, vboxmanage: string): ProviderError {
  return fromTransportError(err, call, { provider: PROVIDER, tool: 'VBoxManage', cannotRun: () => `cannot run '${vboxmanage}' (is VirtualBox installed and on PATH?)` });
}
