/**
 * The one place where virsh and transport failures become ProviderErrors. A message carries one
 * line of libvirt's error (the reason), never the whole stderr; the transport's messages never
 * carry secrets (the SSH runner guarantees it, and we only copy its message for non-auth failures).
 */
import { ProviderError, type ProviderErrorKind, type RetryClass } from '../contract.ts';
import type { RunResult } from '../shared/command-runner.ts';
import { firstLine } from '../shared/stderr.ts';
import { fromTransportError, type CallInfo } from '../shared/transport-errors.ts';
import { PROVIDER } from './options.ts';
import { parseVirshError } from './parse.ts';

export type { CallInfo };

/** Native codes we attach, so callers can tell "no such domain" from "no such snapshot". */
export const NO_DOMAIN = 'VIR_ERR_NO_DOMAIN';
export const NO_SNAPSHOT = 'VIR_ERR_NO_DOMAIN_SNAPSHOT';
export const AGENT_MISSING = 'VIR_ERR_AGENT_UNRESPONSIVE';

interface Rule {
  test: RegExp;
  kind: ProviderErrorKind;
  code?: string;
  retry?: RetryClass;
  /** Replaces libvirt's words when they would not tell the user what to do. */
  explain?: string;
}

// Order matters: the first rule matching any error line wins.
const RULES: Rule[] = [
  { test: /failed to get domain|Domain not found|no domain with matching (uuid|name)/i, kind: 'not_found', code: NO_DOMAIN },
  { test: /Domain snapshot not found|no domain snapshot with matching name/i, kind: 'not_found', code: NO_SNAPSHOT },
  {
    test: /QEMU guest agent is not (configured|connected)|Guest agent is not responding/i,
    kind: 'conflict',
    code: AGENT_MISSING,
    explain: 'a quiesced snapshot needs qemu-guest-agent running in the guest and a guest-agent channel (org.qemu.guest_agent.0) in the domain',
  },
  // libvirtd (or the connection to it) is down: nothing was applied by this call.
  { test: /Failed to connect socket|Cannot recv data|Cannot write data|End of file while reading data|failed to connect to the hypervisor|Connection reset by peer|Broken pipe/i, kind: 'transient', retry: 'transient' },
  { test: /cannot acquire state change lock|Timed out during operation/i, kind: 'transient', retry: 'transient' },
  { test: /active block job|block copy still active/i, kind: 'conflict' },
  { test: /already exists/i, kind: 'conflict' },
  { test: /memory state cannot be saved with offline|domain is not running|domain is already running|Requested operation is not valid|domain is not active/i, kind: 'conflict' },
  { test: /invalid snapshot name/i, kind: 'invalid' },
  { test: /unsupported configuration|Operation not supported|argument unsupported|this function is not supported/i, kind: 'unsupported' },
];

/** A finished virsh call that failed (non-zero exit). */
export function fromVirshFailure(result: RunResult, call: CallInfo): ProviderError {
  const lines = parseVirshError(result.stderr).lines.map((l) => l.trim()).filter((l) => l !== '');
  for (const rule of RULES) {
    const hit = lines.find((l) => rule.test.test(l));
    if (hit === undefined) continue;
    const message = rule.explain ? `${call.what}: ${rule.explain} (libvirt: ${hit})` : `${call.what}: ${hit}`;
    return new ProviderError(PROVIDER, rule.kind, message, {
      ...(rule.retry ? { retry: rule.retry } : {}),
      ...(rule.code ? { nativeCode: rule.code } : {}),
    });
  }
  // Multi-step commands print "Failed to X" first and the reason last: the reason is what helps.
  const reason = lines[lines.length - 1] ?? firstLine(result.stderr) ?? `virsh exited with code ${result.exitCode}`;
  return new ProviderError(PROVIDER, 'internal', `${call.what}: ${reason.slice(0, 500)}`);
}

/** The call did not finish with an exit code (timeout, abort, dropped connection) or threw something else. */
export function fromRunError(err: unknown, call: CallInfo): ProviderError {
  return fromTransportError(err, call, { provider: PROVIDER, tool: 'virsh', cannotRun: (e) => `cannot run virsh on the target (${e.message})` });
}
