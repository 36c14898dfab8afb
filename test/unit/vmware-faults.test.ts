/**
 * providers/vmware/faults.ts on fault objects shaped like reference/vmware.md ("Faults") and like
 * node-soap 1.13 rejected them from vcsim 0.24: a SOAP fault (Error with root.Envelope.Body.Fault),
 * a failed task's LocalizedMethodFault, and axios/Node transport errors.
 */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import {
  VimFault,
  VimTransportError,
  fromVimFault,
  toProviderError,
  transportErrorFrom,
  vimFaultFromSoapError,
  vimFaultFromTaskError,
  xsiTypeOf,
} from '../../providers/vmware/faults.ts';

const call = { what: "target 'vc': create snapshot of VM vm-57", mutating: true };
const read = { what: "target 'vc': read VM vm-57", mutating: false };

/** What node-soap rejects with for an HTTP 500 SOAP fault. */
function soapError(faultstring: string, detail: unknown): Error {
  const e = new Error(`ServerFaultCode: ${faultstring}: ${JSON.stringify(detail)}`) as Error & { root: unknown; response: unknown };
  e.root = { Envelope: { Body: { Fault: { faultcode: 'ServerFaultCode', faultstring, detail } } } };
  // The request (with a password for Login) rides along on node-soap's errors: it must never leak.
  e.response = { status: 500, config: { data: '<Login><password>hunter2-secret</password></Login>' } };
  return e;
}

t.test('xsiTypeOf: both spellings, prefix stripped, a MoRef type is not an xsi type', async (t) => {
  t.equal(xsiTypeOf({ attributes: { 'xsi:type': 'InvalidLogin' } }), 'InvalidLogin');
  t.equal(xsiTypeOf({ attributes: { 'XMLSchema-instance:type': 'vim25:ManagedObjectNotFound' } }), 'ManagedObjectNotFound');
  t.equal(xsiTypeOf({ attributes: { type: 'VirtualMachine' } }), undefined);
  t.equal(xsiTypeOf('x'), undefined);
});

t.test('SOAP faults → VimFault', async (t) => {
  const notFound = vimFaultFromSoapError(
    soapError('The object has already been deleted or has not been completely created', {
      ManagedObjectNotFoundFault: { attributes: { 'xsi:type': 'ManagedObjectNotFound' }, obj: { attributes: { type: 'VirtualMachine' }, $value: 'vm-9999' } },
    }),
  );
  t.equal(notFound?.faultType, 'ManagedObjectNotFound');
  t.match(notFound?.message, /already been deleted/);
  const vcsimSpelling = vimFaultFromSoapError(soapError('Login failure', { InvalidLoginFault: { attributes: { 'XMLSchema-instance:type': 'InvalidLogin' } } }));
  t.equal(vcsimSpelling?.faultType, 'InvalidLogin');
  const untyped = vimFaultFromSoapError(soapError('', { NotAuthenticatedFault: { object: {} } }));
  t.equal(untyped?.faultType, 'NotAuthenticated', 'without a type attribute the element name says it');
  t.equal(vimFaultFromSoapError(new Error('socket hang up')), null);
});

t.test('task errors → VimFault with the localized message', async (t) => {
  const f = vimFaultFromTaskError({ fault: { attributes: { 'XMLSchema-instance:type': 'InvalidPowerState' }, existingState: 'poweredOff' }, localizedMessage: 'The attempted operation cannot be performed in the current state (Powered off).' });
  t.equal(f.faultType, 'InvalidPowerState');
  t.match(f.message, /current state/);
  t.equal(vimFaultFromTaskError(undefined).faultType, 'MethodFault');
  t.equal(vimFaultFromTaskError({ fault: { attributes: { 'xsi:type': 'FileLocked' } } }).message, 'FileLocked', 'no message: the type');
  const goName = vimFaultFromTaskError({ fault: { attributes: { 'XMLSchema-instance:type': 'InvalidPowerState' } }, localizedMessage: '*types.InvalidPowerState' });
  t.equal(goName.message, 'InvalidPowerState', "vcsim's Go type name as the message: the fault type instead");
  t.match(fromVimFault(goName, { what: 'revert', mutating: true }).message, /revert: InvalidPowerState$/, 'and not repeated');
});

t.test('fault type → ProviderError kind', async (t) => {
  const cases: Array<[string, ProviderError['kind']]> = [
    ['ManagedObjectNotFound', 'not_found'],
    ['NotFound', 'not_found'],
    ['InvalidState', 'conflict'],
    ['InvalidPowerState', 'conflict'],
    ['TaskInProgress', 'conflict'],
    ['FileLocked', 'conflict'],
    ['SnapshotDisabled', 'conflict'],
    ['ToolsUnavailable', 'conflict'],
    ['InvalidLogin', 'auth'],
    ['NotAuthenticated', 'auth'],
    ['NoPermission', 'auth'],
    ['HostCommunication', 'transient'],
    ['NotSupported', 'unsupported'],
    ['InvalidName', 'invalid'],
    ['InvalidArgument', 'internal'],
    ['MethodNotFound', 'internal'],
  ];
  for (const [type, kind] of cases) {
    const e = fromVimFault(new VimFault(type, 'why'), call);
    t.equal(e.kind, kind, `${type} → ${kind}`);
    t.equal(e.nativeCode, type);
    t.equal(e.provider, 'vmware');
    t.match(e.message, /^\[snapvisor\] \[vmware\] target 'vc': create snapshot of VM vm-57: /, 'says what was being done');
  }
  t.match(fromVimFault(new VimFault('ToolsUnavailable', 'x'), call).message, /VMware Tools/, 'a Tools fault says Tools are needed');
  t.equal(fromVimFault(new VimFault('HostCommunication', 'x'), call).retry, 'uncertain', 'a mutating call that may have run');
  t.equal(fromVimFault(new VimFault('HostCommunication', 'x'), read).retry, 'transient');
  t.equal(fromVimFault(new VimFault('InvalidArgument', 'bad spec'), call).message.endsWith('InvalidArgument: bad spec'), true, 'internal keeps the fault message');
});

t.test('transport errors: TLS → auth (never retried), connection → transient, uncertain once sent', async (t) => {
  const tls = toProviderError(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), read);
  t.equal(tls.kind, 'auth');
  t.equal(tls.retry, 'final');
  t.equal(toProviderError(Object.assign(new Error('x'), { code: 'ERR_VMWARE_THUMBPRINT_MISMATCH' }), call).kind, 'auth');
  t.equal(toProviderError(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), call).kind, 'auth');

  const refused = toProviderError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), call);
  t.equal(refused.kind, 'transient');
  t.equal(refused.retry, 'transient', 'refused: nothing was sent, safe to retry even a mutating call');
  const reset = toProviderError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), call);
  t.equal(reset.retry, 'uncertain', 'reset after sending a mutating call: it may have been applied');
  t.equal(toProviderError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), read).retry, 'transient');
  const timeout = toProviderError(Object.assign(new Error('timeout of 60000ms exceeded'), { code: 'ECONNABORTED' }), call);
  t.equal(timeout.kind, 'transient');
  t.equal(timeout.retry, 'uncertain');
  const aborted = toProviderError(Object.assign(new Error('canceled'), { code: 'ERR_CANCELED' }), call);
  t.equal(aborted.kind, 'transient');
  t.match(aborted.message, /cancelled/);
  // axios wraps the socket error: the code can sit on the cause.
  t.equal(transportErrorFrom(Object.assign(new Error('x'), { code: 'ERR_BAD_RESPONSE', cause: { code: 'ECONNRESET' } }))?.failure, 'protocol');
  t.equal(transportErrorFrom(Object.assign(new Error('x'), { cause: { code: 'ECONNREFUSED' } }))?.failure, 'refused');
  t.equal(transportErrorFrom(new Error('no code')), null);
});

t.test('HTTP answers without a vim25 body', async (t) => {
  t.equal(toProviderError(new VimTransportError('http', 'HTTP 503 without a vim25 answer', true, 'HTTP_503'), call).kind, 'transient');
  t.equal(toProviderError(new VimTransportError('http', 'HTTP 401 without a vim25 answer', true, 'HTTP_401'), read).kind, 'auth');
  t.equal(toProviderError(new VimTransportError('http', 'HTTP 404 without a vim25 answer', true, 'HTTP_404'), read).kind, 'internal');
});

t.test('no secret or request body reaches the message', async (t) => {
  const e = toProviderError(soapError('Login failure', { InvalidLoginFault: { attributes: { 'xsi:type': 'InvalidLogin' } } }), read);
  t.equal(e.kind, 'auth');
  t.notMatch(e.message, /hunter2/);
  t.equal(e.cause, undefined, 'the raw node-soap error (with the request) is not attached');
  const odd = Object.assign(new Error('Cannot parse response\n<Login><password>hunter2-secret</password>'), { response: { config: { data: 'hunter2-secret' } } });
  const mapped = toProviderError(odd, read);
  t.equal(mapped.kind, 'internal');
  t.notMatch(mapped.message, /hunter2/);
  const same = new ProviderError('vmware', 'conflict', 'already mapped');
  t.equal(toProviderError(same, call), same, 'a ProviderError passes through');
});
