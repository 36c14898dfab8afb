/**
 * The scripts' output protocol (scripts/common.ps1), read back. Pure: no I/O.
 *
 * Success is exit 0 with one `##snapvisor-result <json>` line; failure is one `##snapvisor-error
 * <json>` line with exit 1 (a cmdlet's error record) or 2 (our own refusal, with its kind). Anything
 * else — exit 0 without a result line (a failure PowerShell did not turn into an exit code), or a
 * failure before the script's own handler ran (a parse error, a missing module) — is read from the
 * CLIXML on stderr.
 */
const RESULT = '##snapvisor-result ';
const ERROR = '##snapvisor-error ';

/** A cmdlet's ErrorRecord as common.ps1's Write-SnapvisorFailure reports it. */
export interface CmdletFailure {
  message: string;
  fullyQualifiedErrorId: string;
  category: string;
  exceptionType: string;
}

/** A refusal of the script's own (Stop-Snapvisor), with the ProviderError kind it stands for. */
export interface ScriptRefusal {
  kind: string;
  message: string;
}

export type ScriptOutcome =
  | { type: 'result'; value: unknown }
  | { type: 'failure'; failure: CmdletFailure }
  | { type: 'refusal'; refusal: ScriptRefusal }
  | { type: 'none' };

function lastLine(stdout: string, prefix: string): string | undefined {
  const lines = stdout.split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.replace(/^\uFEFF/, '');
    if (line.startsWith(prefix)) return line.slice(prefix.length);
  }
  return undefined;
}

const str = (o: Record<string, unknown>, key: string): string => (typeof o[key] === 'string' ? (o[key] as string) : '');

export function readScriptOutput(stdout: string, exitCode: number): ScriptOutcome {
  const error = lastLine(stdout, ERROR);
  if (error !== undefined) {
    let o: unknown;
    try {
      o = JSON.parse(error);
    } catch {
      return { type: 'none' };
    }
    if (typeof o !== 'object' || o === null) return { type: 'none' };
    const rec = o as Record<string, unknown>;
    if (exitCode === 2 && typeof rec.kind === 'string') return { type: 'refusal', refusal: { kind: rec.kind, message: str(rec, 'message') } };
    return {
      type: 'failure',
      failure: { message: str(rec, 'message'), fullyQualifiedErrorId: str(rec, 'fullyQualifiedErrorId'), category: str(rec, 'category'), exceptionType: str(rec, 'exceptionType') },
    };
  }
  const result = exitCode === 0 ? lastLine(stdout, RESULT) : undefined;
  if (result === undefined) return { type: 'none' };
  try {
    return { type: 'result', value: JSON.parse(result) as unknown };
  } catch {
    return { type: 'none' };
  }
}
