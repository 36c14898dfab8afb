/**
 * The PowerShell scripts the adapter runs: fixed files shipped in providers/hyperv/scripts, never
 * built from user input. Each request is common.ps1 (the output protocol, projections, lookups)
 * plus one operation's body inside a try/catch that reports a cmdlet's failure with its
 * FullyQualifiedErrorId; user data travels only in `$Params`.
 */
import { readFileSync } from 'node:fs';
import type { PowerShellRequest, PowerShellValue } from '../shared/command-encoding.ts';
import { packageFile } from '../shared/package-file.ts';

export const SCRIPT_NAMES = ['check', 'inventory', 'checkpoints', 'create', 'revert', 'delete', 'power', 'disks'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

const read = (name: string): string => readFileSync(packageFile('providers', 'hyperv', 'scripts', `${name}.ps1`), 'utf8');

let cache: Map<ScriptName, string> | undefined;

/** The full text of one operation's script (read once). */
export function scriptText(name: ScriptName): string {
  if (!cache) {
    const common = read('common');
    cache = new Map(SCRIPT_NAMES.map((n) => [n, `${common}\ntry {\n${read(n)}\n} catch { Write-SnapvisorFailure $_ }\n`]));
  }
  const text = cache.get(name);
  if (text === undefined) throw new Error(`hyperv: no script named ${name}`);
  return text;
}

export function scriptRequest(name: ScriptName, params: { [key: string]: PowerShellValue } = {}): PowerShellRequest {
  return { script: scriptText(name), params };
}
