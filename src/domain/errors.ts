/**
 * Errors the engine raises about Snapvisor's own objects (an unknown VM id, a mode the target
 * cannot do, a job already finished). Provider failures stay ProviderError; the API maps both
 * kinds to problem+json in one handler.
 */
import type { ProviderErrorKind } from '../../providers/contract.ts';

export type ErrorKind = ProviderErrorKind;

export class SnapvisorError extends Error {
  override readonly name = 'SnapvisorError';
  constructor(
    readonly kind: ErrorKind,
    /** Stable machine-readable code, part of the public API, e.g. SNAPVISOR_ERR_VM_NOT_FOUND. */
    readonly code: string,
    message: string,
    /** Extra fields safe to show in the problem body (never secrets). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: string) =>
  new SnapvisorError('not_found', `SNAPVISOR_ERR_${what.toUpperCase()}_NOT_FOUND`, `${what} '${id}' not found`);
