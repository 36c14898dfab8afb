/**
 * Raw vim25 SOAP request envelopes, written by hand so the recordings of vcsim
 * (record-vcsim.ts) and the responder's tests send byte-for-byte the same requests.
 * Pure: strings in, strings out. Test tooling only — the adapter builds its requests with node-soap.
 */

export interface MoRef {
  type: string;
  value: string;
}

export function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

export function moRefXml(tag: string, ref: MoRef): string {
  return `<${tag} type="${xmlEscape(ref.type)}">${xmlEscape(ref.value)}</${tag}>`;
}

function el(tag: string, value: string | number | boolean): string {
  return `<${tag}>${xmlEscape(String(value))}</${tag}>`;
}

export function envelope(body: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    `<soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`
  );
}

function call(method: string, self: MoRef, args = ''): string {
  return envelope(`<${method} xmlns="urn:vim25">${moRefXml('_this', self)}${args}</${method}>`);
}

export const SERVICE_INSTANCE: MoRef = { type: 'ServiceInstance', value: 'ServiceInstance' };
export const SESSION_MANAGER: MoRef = { type: 'SessionManager', value: 'SessionManager' };
export const PROPERTY_COLLECTOR: MoRef = { type: 'PropertyCollector', value: 'propertyCollector' };
export const VIEW_MANAGER: MoRef = { type: 'ViewManager', value: 'ViewManager' };
export const ROOT_FOLDER: MoRef = { type: 'Folder', value: 'group-d1' };

/** The VM properties the adapter reads in its one inventory pass. */
export const VM_PATHS = ['name', 'config.instanceUuid', 'runtime.powerState', 'runtime.consolidationNeeded', 'snapshot'] as const;

export const req = {
  retrieveServiceContent: () => call('RetrieveServiceContent', SERVICE_INSTANCE),
  login: (userName: string, password: string) => call('Login', SESSION_MANAGER, el('userName', userName) + el('password', password)),
  logout: () => call('Logout', SESSION_MANAGER),
  createContainerView: (container: MoRef = ROOT_FOLDER, type = 'VirtualMachine', recursive = true) =>
    call('CreateContainerView', VIEW_MANAGER, moRefXml('container', container) + el('type', type) + el('recursive', recursive)),
  destroyView: (view: MoRef) => call('DestroyView', view),

  /** Inventory: every VM in a ContainerView, through a TraversalSpec over `view`. */
  retrieveVmsInView: (view: MoRef, maxObjects?: number, paths: readonly string[] = VM_PATHS) =>
    call(
      'RetrievePropertiesEx',
      PROPERTY_COLLECTOR,
      '<specSet>' +
        `<propSet><type>VirtualMachine</type>${paths.map((p) => el('pathSet', p)).join('')}</propSet>` +
        `<objectSet>${moRefXml('obj', view)}<skip>true</skip>` +
        '<selectSet xsi:type="TraversalSpec"><name>traverseView</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet>' +
        '</objectSet></specSet>' +
        (maxObjects === undefined ? '<options></options>' : `<options>${el('maxObjects', maxObjects)}</options>`),
    ),
  /** Properties of one object (a VM, a Task, the SessionManager). */
  retrieveObject: (obj: MoRef, paths: readonly string[]) =>
    call(
      'RetrievePropertiesEx',
      PROPERTY_COLLECTOR,
      `<specSet><propSet>${el('type', obj.type)}${paths.map((p) => el('pathSet', p)).join('')}</propSet>` +
        `<objectSet>${moRefXml('obj', obj)}</objectSet></specSet><options></options>`,
    ),
  continueRetrieve: (token: string) => call('ContinueRetrievePropertiesEx', PROPERTY_COLLECTOR, el('token', token)),
  cancelRetrieve: (token: string) => call('CancelRetrievePropertiesEx', PROPERTY_COLLECTOR, el('token', token)),

  createSnapshot: (vm: MoRef, name: string, description: string, memory: boolean, quiesce: boolean) =>
    call('CreateSnapshot_Task', vm, el('name', name) + el('description', description) + el('memory', memory) + el('quiesce', quiesce)),
  revertToSnapshot: (snapshot: MoRef, suppressPowerOn?: boolean) =>
    call('RevertToSnapshot_Task', snapshot, suppressPowerOn === undefined ? '' : el('suppressPowerOn', suppressPowerOn)),
  removeSnapshot: (snapshot: MoRef, removeChildren: boolean, consolidate = true) =>
    call('RemoveSnapshot_Task', snapshot, el('removeChildren', removeChildren) + el('consolidate', consolidate)),
  removeAllSnapshots: (vm: MoRef, consolidate = true) => call('RemoveAllSnapshots_Task', vm, el('consolidate', consolidate)),
  consolidateVmDisks: (vm: MoRef) => call('ConsolidateVMDisks_Task', vm),
  powerOn: (vm: MoRef) => call('PowerOnVM_Task', vm),
  powerOff: (vm: MoRef) => call('PowerOffVM_Task', vm),
  shutdownGuest: (vm: MoRef) => call('ShutdownGuest', vm),
  cancelTask: (task: MoRef) => call('CancelTask', task),
};
