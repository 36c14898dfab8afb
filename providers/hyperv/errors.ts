/**
 * The one place where PowerShell outcomes and transport failures become ProviderErrors. Decisions
 * key on the error record's FullyQualifiedErrorId and category (English whatever the host's UI
 * language, reference §1.4), never on the localised message, which is only shown.
 */
import { PROVIDER_ERROR_KINDS, ProviderError, type ProviderErrorKind, type RetryClass } from '../contract.ts';
import type { RunResult } from '../shared/command-runner.ts';
import { fromTransportError, type CallInfo } from '../shared/transport-errors.ts';
import { PROVIDER } from './options.ts';
import { parsePowerShellStderr } from './parse.ts';
import type { CmdletFailure, ScriptOutcome } from './script-output.ts';

export type { CallInfo };

/** Longest part of a host's message quoted in ours. */
const MESSAGE_MAX = 500;

const oneLine = (text: string): string => {
  const line = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '').join(' ');
  return line.length > MESSAGE_MAX ? `${line.slice(0, MESSAGE_MAX)}…` : line;
};

/** ErrorCategory → what it means for Snapvisor; anything else is `internal`. */
const BY_CATEGORY: Readonly<Record<string, { kind: ProviderErrorKind; retry?: RetryClass }>> = {
  ObjectNotFound: { kind: 'not_found' },
  PermissionDenied: { kind: 'auth' },
  SecurityError: { kind: 'auth' },
  ResourceBusy: { kind: 'transient', retry: 'transient' },
  ResourceUnavailable: { kind: 'transient', retry: 'transient' },
  InvalidOperation: { kind: 'conflict' },
  OperationStopped: { kind: 'conflict' },
};

function fromCmdletFailure(f: CmdletFailure, call: CallInfo): ProviderError {
  const message = `${call.what}: ${oneLine(f.message) || f.fullyQualifiedErrorId || 'PowerShell reported an error'}`;
  const opts = f.fullyQualifiedErrorId ? { nativeCode: f.fullyQualifiedErrorId } : {};
  // Get-VM's "unable to find a virtual machine" is InvalidArgument/InvalidParameter (reference §2.6).
  if (/^InvalidParameter,Microsoft\.HyperV\.PowerShell\.Commands\.GetVM$/.test(f.fullyQualifiedErrorId)) return new ProviderError(PROVIDER, 'not_found', message, opts);
  if (/^CommandNotFoundException/.test(f.fullyQualifiedErrorId)) {
    return new ProviderError(PROVIDER, 'unsupported', `${call.what}: the Hyper-V PowerShell module is not available on the host (${oneLine(f.message)})`, opts);
  }
  const rule = BY_CATEGORY[f.category];
  if (rule) return new ProviderError(PROVIDER, rule.kind, message, { ...opts, ...(rule.retry ? { retry: rule.retry } : {}) });
  // A failure of a call that changes the VM may have changed part of it (Hyper-V's errors are per
  // operand): the engine must look before repeating it.
  return new ProviderError(PROVIDER, 'internal', message, { ...opts, ...(call.mutating ? { retry: 'uncertain' as const } : {}) });
}

/** A script that did not end with its result line (readScriptOutput answers a result only for exit 0). */
export function fromScriptOutcome(outcome: Exclude<ScriptOutcome, { type: 'result' }>, result: RunResult, call: CallInfo): ProviderError {
  switch (outcome.type) {
    case 'refusal': {
      const kind = (PROVIDER_ERROR_KINDS as readonly string[]).includes(outcome.refusal.kind) ? (outcome.refusal.kind as ProviderErrorKind) : 'internal';
      return new ProviderError(PROVIDER, kind, `${call.what}: ${oneLine(outcome.refusal.message)}`, kind === 'transient' ? { retry: 'transient' } : {});
    }
    case 'failure':
      return fromCmdletFailure(outcome.failure, call);
    case 'none': {
      const stderr = parsePowerShellStderr(result.stderr);
      const reason = stderr.message || oneLine(stderr.text);
      const fqid = stderr.fullyQualifiedErrorIds[0];
      if (fqid !== undefined) {
        return fromCmdletFailure({ message: reason, fullyQualifiedErrorId: fqid, category: stderr.categories[0]?.category ?? '', exceptionType: stderr.categories[0]?.reason ?? '' }, call);
      }
      const why = result.exitCode === 0
        ? `PowerShell exited with code 0 without reporting a result${reason ? ` (${reason})` : ''}`
        : `PowerShell exited with code ${result.exitCode}${reason ? `: ${reason}` : ''}`;
      return new ProviderError(PROVIDER, 'internal', `${call.what}: ${why}`, call.mutating ? { retry: 'uncertain' } : {});
    }
  }
}

/** The call did not finish with an exit code (timeout, abort, dropped connection) or threw something else. */
export function fromRunError(err: unknown, call: CallInfo, executable: string): ProviderError {
  return fromTransportError(err, call, { provider: PROVIDER, tool: executable, cannotRun: () => `cannot run '${executable}' on the host (is PowerShell on its PATH?)` });
}
