/**
 * Writes vim25 responses the way vcsim 0.24 writes them (see test/fixtures/vmware/vcsim-0.24/):
 * the same envelope and namespace declarations, `<XResponse xmlns="urn:vim25">`, MoRefs as
 * `<tag type="T">value</tag>`, `xsd:anyType` values with vcsim's `XMLSchema-instance:type`
 * attribute, and SOAP fault details as `<XFault xmlns="urn:vim25" xsi:type="X">`. Pure.
 */
import { xmlEscape, type MoRef } from './requests.ts';

const ENVELOPE_OPEN =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
  '<soapenv:Body>';
const ENVELOPE_CLOSE = '</soapenv:Body></soapenv:Envelope>';
const XSI_DECL = 'xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance"';

/** A fault field: plain text or a MoRef (e.g. ManagedObjectNotFound.obj, TaskInProgress.task). */
export type FaultField = { name: string; value: string } | { name: string; ref: MoRef };

/** A typed vim25 fault: `type` is the xsi type (InvalidState, FileLocked, …). */
export interface VimFault {
  type: string;
  /** faultstring of a SOAP fault, localizedMessage of a task error. */
  message: string;
  fields: FaultField[];
}

/** Thrown by the model; the server turns it into a SOAP fault (HTTP 500) or a task error. */
export class VimFaultError extends Error {
  constructor(readonly fault: VimFault) {
    super(`${fault.type}: ${fault.message}`);
    this.name = 'VimFaultError';
  }
}

export function el(tag: string, text: string | number | boolean): string {
  return `<${tag}>${xmlEscape(String(text))}</${tag}>`;
}

export function moRef(tag: string, ref: MoRef, extraAttrs = ''): string {
  return `<${tag}${extraAttrs} type="${xmlEscape(ref.type)}">${xmlEscape(ref.value)}</${tag}>`;
}

/** An `xsd:anyType` value (DynamicProperty.val): vcsim declares the namespace on the element itself. */
export function anyVal(tag: string, xsiType: string, inner: string): string {
  return `<${tag} ${XSI_DECL} XMLSchema-instance:type="${xsiType}">${inner}</${tag}>`;
}

function faultFields(fault: VimFault): string {
  return fault.fields.map((f) => ('ref' in f ? moRef(f.name, f.ref) : el(f.name, f.value))).join('');
}

/** `<soapenv:Fault>` with ServerFaultCode and the typed detail, as vcsim writes it. */
export function soapFaultEnvelope(fault: VimFault): string {
  return (
    ENVELOPE_OPEN +
    `<soapenv:Fault><faultcode>ServerFaultCode</faultcode>${el('faultstring', fault.message)}` +
    `<detail><${fault.type}Fault xmlns="urn:vim25" xsi:type="${fault.type}">${faultFields(fault)}</${fault.type}Fault></detail>` +
    '</soapenv:Fault>' +
    ENVELOPE_CLOSE
  );
}

/** LocalizedMethodFault inside TaskInfo.error (the namespace is declared on the enclosing `val`). */
export function taskErrorXml(fault: VimFault): string {
  return `<error><fault XMLSchema-instance:type="${fault.type}">${faultFields(fault)}</fault>${el('localizedMessage', fault.message)}</error>`;
}

/** LocalizedMethodFault inside a MissingProperty. */
export function missingSetXml(path: string, fault: VimFault): string {
  return `<missingSet>${el('path', path)}<fault>${anyVal('fault', fault.type, faultFields(fault))}</fault></missingSet>`;
}

/** `<{method}Response xmlns="urn:vim25">{inner}</…>`; inner is usually `<returnval>…</returnval>` or empty. */
export function responseEnvelope(method: string, inner: string): string {
  return `${ENVELOPE_OPEN}<${method}Response xmlns="urn:vim25">${inner}</${method}Response>${ENVELOPE_CLOSE}`;
}

export function propSetXml(name: string, xsiType: string, inner: string): string {
  return `<propSet>${el('name', name)}${anyVal('val', xsiType, inner)}</propSet>`;
}

/** Faults with the fields vim25 defines for them, messages as vcsim or vCenter word them. */
export const faults = {
  invalidLogin: (): VimFault => ({ type: 'InvalidLogin', message: 'Login failure', fields: [] }),
  notAuthenticated: (object: MoRef, privilegeId = 'System.View'): VimFault => ({
    type: 'NotAuthenticated',
    message: '',
    fields: [
      { name: 'object', ref: object },
      { name: 'privilegeId', value: privilegeId },
    ],
  }),
  managedObjectNotFound: (obj: MoRef, message = `managed object not found: ${obj.type}:${obj.value}`): VimFault => ({
    type: 'ManagedObjectNotFound',
    message,
    fields: [{ name: 'obj', ref: obj }],
  }),
  methodNotFound: (receiver: MoRef, method: string): VimFault => ({
    type: 'MethodNotFound',
    message: `${receiver.type}:${receiver.value} does not implement: ${method}`,
    fields: [
      { name: 'receiver', ref: receiver },
      { name: 'method', value: method },
    ],
  }),
  invalidPowerState: (requestedState: string, existingState: string): VimFault => ({
    type: 'InvalidPowerState',
    message: `The attempted operation cannot be performed in the current state (${existingState}).`,
    fields: [
      { name: 'requestedState', value: requestedState },
      { name: 'existingState', value: existingState },
    ],
  }),
  invalidState: (message = 'The operation is not allowed in the current state.'): VimFault => ({ type: 'InvalidState', message, fields: [] }),
  taskInProgress: (task: MoRef): VimFault => ({ type: 'TaskInProgress', message: 'Another task is already in progress.', fields: [{ name: 'task', ref: task }] }),
  fileLocked: (file: string): VimFault => ({
    type: 'FileLocked',
    message: `Unable to access file ${file} since it is locked`,
    fields: [{ name: 'file', value: file }],
  }),
  requestCanceled: (): VimFault => ({ type: 'RequestCanceled', message: 'The task was canceled by a user.', fields: [] }),
  notSupported: (message = 'The operation is not supported on the object.'): VimFault => ({ type: 'NotSupported', message, fields: [] }),
  invalidArgument: (invalidProperty: string, message = 'A specified parameter was not correct: ' + invalidProperty): VimFault => ({
    type: 'InvalidArgument',
    message,
    fields: [{ name: 'invalidProperty', value: invalidProperty }],
  }),
  invalidProperty: (name: string): VimFault => ({ type: 'InvalidProperty', message: '', fields: [{ name: 'name', value: name }] }),
  toolsUnavailable: (): VimFault => ({ type: 'ToolsUnavailable', message: 'Cannot complete operation because VMware Tools is not running in this virtual machine.', fields: [] }),
};
