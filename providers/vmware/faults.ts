/**
 * The one place where vim25 failures become ProviderErrors (STYLE §4). Pure: no I/O.
 *
 * Two failure shapes reach us (reference/vmware.md "Faults"):
 * - a SOAP fault (HTTP 500): node-soap rejects with an Error whose `root.Envelope.Body.Fault.detail`
 *   holds one `<XxxFault xsi:type="Xxx">` element — vcsim spells the attribute
 *   `XMLSchema-instance:type`, vCenter `xsi:type`;
 * - a task that ends in `info.state = 'error'` with `info.error` = LocalizedMethodFault
 *   `{fault: {attributes: {…type}}, localizedMessage}`.
 * Both become a `VimFault {faultType, message}`. Network and TLS failures become a
 * `VimTransportError` (client.ts decides which; this module classifies the codes).
 *
 * Messages never carry request bodies, headers or axios configs: the Login request holds the password.
 */
import { ProviderError, type ProviderErrorKind, type RetryClass } from '../contract.ts';
import { PROVIDER } from './options.ts';

/** A vSphere fault, from a SOAP fault or a failed task. */
export class VimFault extends Error {
  override readonly name = 'VimFault';
  constructor(
    /** The fault's type without namespace prefix, e.g. `ManagedObjectNotFound`. */
    readonly faultType: string,
    message: string,
  ) {
    super(message);
  }
}

export type TransportFailure = 'refused' | 'reset' | 'timeout' | 'aborted' | 'tls' | 'dns' | 'http' | 'protocol';

/** The request did not produce a vim25 answer (network, TLS, HTTP without a SOAP body). */
export class VimTransportError extends Error {
  override readonly name = 'VimTransportError';
  constructor(
    readonly failure: TransportFailure,
    message: string,
    /** The request may have reached the server (so a mutating call may have been applied). */
    readonly maybeSent: boolean,
    /** Native code (ECONNRESET, DEPTH_ZERO_SELF_SIGNED_CERT, HTTP status…), safe to show. */
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

export interface CallInfo {
  /** What Snapvisor was doing, e.g. "target 'vc': create snapshot of VM vm-57" — starts the message. */
  what: string;
  /** The call may change the VM: an interrupted one is `uncertain`, not safely repeatable. */
  mutating: boolean;
  /** A change was already started (waiting for its task): any transient failure leaves the outcome unknown. */
  outcomeUnknown?: boolean;
}

const NOT_FOUND = new Set(['ManagedObjectNotFound', 'NotFound']);
const CONFLICT = new Set([
  'InvalidState',
  'InvalidPowerState',
  'InvalidVmState',
  'InvalidHostState',
  'TaskInProgress',
  'FileLocked',
  'ConcurrentAccess',
  'SnapshotDisabled',
  'SnapshotLocked',
  'SnapshotFault',
  'SnapshotIncompatibleDeviceInVm',
  'TooManySnapshotLevels',
  'MultipleSnapshotsNotSupported',
  'VmConfigIncompatibleForFaultTolerance',
  'RequestCanceled',
]);
/** The guest agent is missing or cannot quiesce: a state of the VM, fixable by its owner. */
const NEEDS_TOOLS = new Set(['ToolsUnavailable', 'ToolsInstallationInProgress', 'ApplicationQuiesceFault', 'QuiesceDatastoreIOForHAFailed']);
const AUTH = new Set(['InvalidLogin', 'NotAuthenticated', 'NoPermission', 'SecurityError', 'NoClientCertificate', 'InvalidClientCertificate', 'PasswordExpired']);
const TRANSIENT = new Set(['HostCommunication', 'HostNotConnected', 'HostNotReachable', 'Timedout', 'RequestTimeout']);
const UNSUPPORTED = new Set(['NotSupported', 'NotImplemented']);
const INVALID = new Set(['InvalidName']);

/** Every TLS verification failure Node reports, plus the thumbprint check of client.ts. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'ERR_VMWARE_THUMBPRINT_MISMATCH',
]);
/** Failures before a single byte of the request left this machine. */
const NOT_SENT = new Map<string, TransportFailure>([
  ['ECONNREFUSED', 'refused'],
  ['ENOTFOUND', 'dns'],
  ['EAI_AGAIN', 'dns'],
  ['EHOSTUNREACH', 'refused'],
  ['ENETUNREACH', 'refused'],
  ['EADDRNOTAVAIL', 'refused'],
]);
const MAYBE_SENT = new Map<string, TransportFailure>([
  ['ECONNRESET', 'reset'],
  ['EPIPE', 'reset'],
  ['ECONNABORTED', 'timeout'], // axios' own timeout
  ['ETIMEDOUT', 'timeout'],
  ['ESOCKETTIMEDOUT', 'timeout'],
  ['ERR_CANCELED', 'aborted'], // axios' signal
  ['ABORT_ERR', 'aborted'],
  ['ERR_BAD_RESPONSE', 'protocol'],
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** The `xsi:type` of a parsed element in either spelling, without its namespace prefix. */
export function xsiTypeOf(node: unknown): string | undefined {
  if (!isRecord(node) || !isRecord(node.attributes)) return undefined;
  for (const [k, v] of Object.entries(node.attributes)) {
    if ((k === 'xsi:type' || k.endsWith('-instance:type') || (k.endsWith(':type') && k !== 'type')) && typeof v === 'string') {
      return v.slice(v.indexOf(':') + 1);
    }
  }
  return undefined;
}

/** A SOAP fault as node-soap rejects it, or null when the error is not one. */
export function vimFaultFromSoapError(err: unknown): VimFault | null {
  if (!isRecord(err) || !isRecord(err.root) || !isRecord(err.root.Envelope) || !isRecord(err.root.Envelope.Body)) return null;
  const fault = err.root.Envelope.Body.Fault;
  if (!isRecord(fault)) return null;
  const faultstring = typeof fault.faultstring === 'string' ? fault.faultstring : '';
  let faultType: string | undefined;
  if (isRecord(fault.detail)) {
    for (const [element, node] of Object.entries(fault.detail)) {
      if (element === 'attributes') continue;
      // <InvalidLoginFault xsi:type="InvalidLogin">; the element name is the fallback without a type.
      faultType = xsiTypeOf(node) ?? element.replace(/^[^:]*:/, '').replace(/Fault$/, '');
      break;
    }
  }
  const type = faultType ?? (typeof fault.faultcode === 'string' ? fault.faultcode.replace(/^[^:]*:/, '') : 'SoapFault');
  return new VimFault(type, faultstring);
}

const GO_TYPE_NAME = /^\*?types\.\w+$/;

/** `TaskInfo.error` (a LocalizedMethodFault) as a VimFault. */
export function vimFaultFromTaskError(error: unknown): VimFault {
  if (!isRecord(error)) return new VimFault('MethodFault', 'the task failed without saying why');
  const type = xsiTypeOf(error.fault) ?? 'MethodFault';
  const localized = typeof error.localizedMessage === 'string' ? error.localizedMessage.trim() : '';
  // vcsim writes its Go type (`*types.InvalidPowerState`) as the message: that says nothing the type does not.
  const message = localized === '' || GO_TYPE_NAME.test(localized) ? type : localized;
  return new VimFault(type, message);
}

/** Classifies a network/TLS error (axios or Node) by its code (on the error or its cause); null when it has none we know. */
export function transportErrorFrom(err: unknown): VimTransportError | null {
  if (!isRecord(err)) return null;
  const code = typeof err.code === 'string' ? err.code : undefined;
  const causeCode = isRecord(err.cause) && typeof err.cause.code === 'string' ? err.cause.code : undefined;
  const c = code !== undefined && (TLS_CODES.has(code) || NOT_SENT.has(code) || MAYBE_SENT.has(code)) ? code : (causeCode ?? code);
  if (c === undefined) return null;
  if (TLS_CODES.has(c)) return new VimTransportError('tls', `the server's TLS certificate was not accepted (${c})`, false, c);
  const before = NOT_SENT.get(c);
  if (before) return new VimTransportError(before, `cannot connect (${c})`, false, c);
  const after = MAYBE_SENT.get(c);
  if (after === 'aborted') return new VimTransportError('aborted', 'cancelled', true, c);
  if (after === 'timeout') return new VimTransportError('timeout', `no answer in time (${c})`, true, c);
  if (after) return new VimTransportError(after, `the connection failed (${c})`, true, c);
  return null;
}

/** An HTTP answer that is not a vim25 response (a proxy's 503, an HTML login page…). */
export function httpStatusError(status: number): VimTransportError {
  return new VimTransportError('http', `HTTP ${status} without a vim25 answer`, true, `HTTP_${status}`);
}

function kindOfFault(faultType: string): ProviderErrorKind {
  if (NOT_FOUND.has(faultType)) return 'not_found';
  if (CONFLICT.has(faultType) || NEEDS_TOOLS.has(faultType)) return 'conflict';
  if (AUTH.has(faultType)) return 'auth';
  if (TRANSIENT.has(faultType)) return 'transient';
  if (UNSUPPORTED.has(faultType)) return 'unsupported';
  if (INVALID.has(faultType)) return 'invalid';
  return 'internal';
}

export function needsTools(faultType: string): boolean {
  return NEEDS_TOOLS.has(faultType);
}

export function fromVimFault(fault: VimFault, call: CallInfo): ProviderError {
  const kind = kindOfFault(fault.faultType);
  const message = fault.message.trim();
  const text = message === '' || message === fault.faultType ? fault.faultType : `${fault.faultType}: ${message}`;
  const hint = needsTools(fault.faultType) ? ' (quiesced snapshots need VMware Tools — the guest agent — running in the guest)' : '';
  const retry: RetryClass | undefined = kind === 'transient' && (call.mutating || call.outcomeUnknown) ? 'uncertain' : undefined;
  return new ProviderError(PROVIDER, kind, `${call.what}: ${text}${hint}`, { nativeCode: fault.faultType, ...(retry ? { retry } : {}) });
}

export function fromTransport(err: VimTransportError, call: CallInfo): ProviderError {
  const opts = err.code === undefined ? {} : { nativeCode: err.code };
  if (err.failure === 'tls') {
    // Like a changed SSH host key: never retried blindly, an operator must look.
    return new ProviderError(PROVIDER, 'auth', `${call.what}: ${err.message}; check the target's ca/thumbprint`, opts);
  }
  if (err.failure === 'http') {
    const status = Number(err.code?.slice(5));
    if (status === 401 || status === 403) return new ProviderError(PROVIDER, 'auth', `${call.what}: ${err.message}`, opts);
    if (status >= 500 || status === 429 || status === 408) {
      return new ProviderError(PROVIDER, 'transient', `${call.what}: ${err.message}`, { ...opts, retry: call.mutating || call.outcomeUnknown ? 'uncertain' : 'transient' });
    }
    return new ProviderError(PROVIDER, 'internal', `${call.what}: ${err.message}`, opts);
  }
  const retry: RetryClass = call.outcomeUnknown || (call.mutating && err.maybeSent) ? 'uncertain' : 'transient';
  return new ProviderError(PROVIDER, 'transient', `${call.what}: ${err.message}`, { ...opts, retry });
}

/** Anything a vim25 call threw → ProviderError. A ProviderError passes through. */
export function toProviderError(err: unknown, call: CallInfo): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof VimFault) return fromVimFault(err, call);
  if (err instanceof VimTransportError) return fromTransport(err, call);
  const fault = vimFaultFromSoapError(err);
  if (fault) return fromVimFault(fault, call);
  const transport = transportErrorFrom(err);
  if (transport) return fromTransport(transport, call);
  // Only the first line of our own message: node-soap's messages may embed a JSON dump of the body.
  const first = err instanceof Error ? (err.message.split('\n')[0] ?? '').slice(0, 200) : 'unknown error';
  return new ProviderError(PROVIDER, 'internal', `${call.what}: ${first}`);
}
