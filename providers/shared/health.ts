/**
 * check()'s answer, the same rule for every adapter: the probe's version string when it worked;
 * `transient` (nothing answered: connection refused, timeout, daemon down) is unreachable; `auth`
 * means the target answered and refused us (SSH login or host key, vSphere login), so it is
 * reachable with authOk false. Anything else is a real failure and is thrown.
 */
import { ProviderError, type CallContext, type TargetHealth } from '../contract.ts';
import type { Guards } from './guards.ts';

/** The health an error stands for, or null when it is not a health answer (the caller rethrows). */
export function healthFromError(e: unknown): TargetHealth | null {
  if (!(e instanceof ProviderError)) return null;
  if (e.kind === 'transient') return { reachable: false, message: e.message };
  if (e.kind === 'auth') return { reachable: true, authOk: false, message: e.message };
  return null;
}

/** The probe answers the version, or the version with the target's clock (TargetHealth.time) when it can read it. */
export async function checkHealth(
  ctx: CallContext,
  guards: Pick<Guards, 'assertNotAborted'>,
  probe: (ctx: CallContext) => Promise<string | { version: string; time?: string }>,
): Promise<TargetHealth> {
  guards.assertNotAborted(ctx, 'check');
  try {
    const answer = await probe(ctx);
    if (typeof answer === 'string') return { reachable: true, version: answer, authOk: true };
    return { reachable: true, version: answer.version, authOk: true, ...(answer.time === undefined ? {} : { time: answer.time }) };
  } catch (e) {
    const health = healthFromError(e);
    if (health) return health;
    throw e;
  }
}
