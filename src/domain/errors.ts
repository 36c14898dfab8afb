/**
 * Errors the engine raises about Snapvisor's own objects (an unknown VM id, a mode the target
 * cannot do, a job already finished). They share one base with the providers' errors
 * (providers/contract.ts): the API maps both by `kind` to problem+json in one handler, and the
 * worker decides retries from the same `retry` class.
 */
import { SnapvisorError, type ProviderErrorKind } from '../../providers/contract.ts';

export { SnapvisorError };
export type ErrorKind = ProviderErrorKind;

export const notFound = (what: string, id: string) =>
  new SnapvisorError('not_found', `SNAPVISOR_ERR_${what.toUpperCase()}_NOT_FOUND`, `${what} '${id}' not found`);

/** The code of a write refused because the disk holding Snapvisor's own database is full (HTTP 507). */
export const INSUFFICIENT_STORAGE = 'SNAPVISOR_ERR_INSUFFICIENT_STORAGE';
/** The database server did not answer (PostgreSQL restarting, failing over, unreachable). */
export const DATABASE_UNAVAILABLE = 'SNAPVISOR_ERR_DATABASE_UNAVAILABLE';
