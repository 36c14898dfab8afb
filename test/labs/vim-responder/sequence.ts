/**
 * The exchanges recorded from vcsim (record-vcsim.ts), as one sequence over a `step` function, so
 * the responder's tests can send exactly the same requests and compare the answers' shapes.
 */
import { req, type MoRef } from './requests.ts';
import { asList, child, textOf, type XmlNode } from './xml.ts';

/** Sends one request; returns the element inside soapenv:Body. `withCookie` false sends no session. */
export type Step = (name: string, body: string, note: string, withCookie?: boolean) => Promise<XmlNode>;

export const VCSIM_SEQUENCE_VM = 'DC0_H0_VM0';

export async function runVcsimSequence(step: Step, login: { username: string; password: string }): Promise<void> {
  const moRef = (node: XmlNode | undefined): MoRef => {
  const type = child(node, '@_type');
  return { type: typeof type === 'string' ? type : '', value: textOf(node) };
  };
  const waitTask = async (name: string, task: MoRef, note: string) => step(name, req.retrieveObject(task, ['info']), note);

  await step('retrieve-service-content', req.retrieveServiceContent(), 'ServiceInstance content; no session needed');
  await step('login-wrong-password', req.login(login.username, 'not-the-password'), 'InvalidLogin fault, HTTP 500');
  await step('create-container-view-no-session', req.createContainerView(), 'NotAuthenticated fault without a session cookie');
  await step('login', req.login(login.username, login.password), 'sets vmware_soap_session');
  await step('current-session', req.retrieveObject({ type: 'SessionManager', value: 'SessionManager' }, ['currentSession']), 'SessionManager.currentSession while logged in');
  const view = moRef(child(await step('create-container-view', req.createContainerView(), 'ContainerView of all VMs'), 'returnval'));
  const inventory = await step('retrieve-vms-max-objects-2', req.retrieveVmsInView(view, 2), 'inventory pass; vcsim ignores maxObjects (no token)');
  await step('destroy-view', req.destroyView(view), 'DestroyView');
  const objects = asList(child(inventory, 'returnval', 'objects'));
  const first = objects.find((o) => asList(child(o, 'propSet')).some((p) => textOf(child(p, 'name')) === 'name' && textOf(child(p, 'val')) === VCSIM_SEQUENCE_VM));
  const vm = moRef(child(first ?? objects[0], 'obj'));

  await step('retrieve-vm-no-snapshot', req.retrieveObject(vm, ['name', 'runtime.powerState', 'runtime.consolidationNeeded', 'snapshot']), 'unset properties (consolidationNeeded, snapshot) are omitted');
  const t1 = moRef(child(await step('create-snapshot-task', req.createSnapshot(vm, 's1', 'first', false, false), 'returns a Task MoRef'), 'returnval'));
  await waitTask('task-info-create-snapshot-success', t1, 'Task.info after CreateSnapshot_Task: state success, result = snapshot MoRef');
  const t2 = moRef(child(await step('create-snapshot-memory-task', req.createSnapshot(vm, 's2', 'child with memory', true, false), 'child snapshot, memory=true'), 'returnval'));
  const s2 = moRef(child(await waitTask('task-info-create-snapshot-memory', t2, 'Task.info'), 'returnval', 'objects', 'propSet', 'val', 'result'));
  await step('retrieve-vm-with-snapshots', req.retrieveObject(vm, ['name', 'config.instanceUuid', 'runtime.powerState', 'runtime.consolidationNeeded', 'snapshot']), 'snapshot tree s1 → s2');
  // Revert to the memory snapshot: vcsim and vSphere then agree on the power state (on), so the
  // rest of the sequence sees the same VM on both; non-memory reverts are the responder's own (README).
  const t3 = moRef(child(await step('revert-to-snapshot-task', req.revertToSnapshot(s2), 'RevertToSnapshot_Task to s2 (memory)'), 'returnval'));
  await waitTask('task-info-revert-success', t3, 'Task.info after revert: no result');
  await step('retrieve-vm-after-revert', req.retrieveObject(vm, ['runtime.powerState', 'snapshot']), 'poweredOn after reverting to a memory snapshot');
  const t4 = moRef(child(await step('remove-snapshot-task', req.removeSnapshot(s2, false, true), 'RemoveSnapshot_Task s2'), 'returnval'));
  await waitTask('task-info-remove-snapshot', t4, 'Task.info');
  await step('remove-snapshot-unknown', req.removeSnapshot({ type: 'VirtualMachineSnapshot', value: 'snapshot-9999' }, false, true), 'unknown MoRef → ManagedObjectNotFound fault');
  const t5 = moRef(child(await step('remove-all-snapshots-task', req.removeAllSnapshots(vm, true), 'RemoveAllSnapshots_Task'), 'returnval'));
  await waitTask('task-info-remove-all', t5, 'Task.info');
  await step('retrieve-vm-after-remove-all', req.retrieveObject(vm, ['snapshot']), 'no snapshot property: empty objects? see file');
  const t6 = moRef(child(await step('power-on-task-already-on', req.powerOn(vm), 'PowerOnVM_Task on a poweredOn VM'), 'returnval'));
  await waitTask('task-info-error-invalid-power-state', t6, 'Task.info with state error and a typed info.error.fault');
  await step('shutdown-guest', req.shutdownGuest(vm), 'ShutdownGuest returns no returnval');
  const t7 = moRef(child(await step('power-off-task', req.powerOff(vm), 'PowerOffVM_Task'), 'returnval'));
  await waitTask('task-info-power-off', t7, 'Task.info');
  const t8 = moRef(child(await step('power-on-task', req.powerOn(vm), 'PowerOnVM_Task'), 'returnval'));
  await waitTask('task-info-power-on', t8, 'Task.info');
  await step('cancel-task-finished', req.cancelTask(t8), 'CancelTask on a finished task');
  await step('create-snapshot-unknown-vm', req.createSnapshot({ type: 'VirtualMachine', value: 'vm-9999' }, 'x', '', false, false), 'ManagedObjectNotFound fault on a method call');
  await step('consolidate-vm-disks', req.consolidateVmDisks(vm), 'vcsim 0.24: MethodNotFound');
  await step('continue-retrieve-properties', req.continueRetrieve('1'), 'vcsim 0.24: MethodNotFound');
  await step('retrieve-unknown-object', req.retrieveObject({ type: 'VirtualMachine', value: 'vm-9999' }, ['name']), 'unknown object in a RetrievePropertiesEx');
  await step('logout', req.logout(), 'Logout');
  await step('current-session-after-logout', req.retrieveObject({ type: 'SessionManager', value: 'SessionManager' }, ['currentSession']), 'after Logout, with the old cookie');
  await step('retrieve-vm-after-logout', req.retrieveObject(vm, ['name']), 'RetrievePropertiesEx on a VM with the old cookie');
  await step('logout-after-logout', req.logout(), 'Logout with the old cookie');
  await step('create-container-view-after-logout', req.createContainerView(), 'NotAuthenticated with the old cookie');
}
