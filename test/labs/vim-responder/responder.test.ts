/**
 * The vim responder (server.ts) against the vcsim recordings and, per scenario, the behaviours
 * vcsim 0.24 cannot show: consolidation, paging, running tasks with progress and cancellation,
 * snapshot conflicts, power effects of a revert, faults and dropped connections on demand.
 * Raw SOAP over node's fetch, the session cookie handled by hand.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:https';
import { request as httpsRequest } from 'node:https';
import { RECORDINGS_DIR } from './record-vcsim.ts';
import { req, type MoRef } from './requests.ts';
import { scenarios, type Scenario } from './scenario.ts';
import { runVcsimSequence } from './sequence.ts';
import { startVimResponder, type VimResponder } from './server.ts';
import { faults } from './soap-xml.ts';
import { asList, bodyOf, child, isObject, parseXml, shapeOf, textOf, type XmlNode, type XmlObject } from './xml.ts';

const USER = 'snapvisor';
const PASSWORD = 'snapvisor-lab-pw';

interface Answer {
  status: number;
  text: string;
  doc: XmlObject;
  /** The element inside soapenv:Body and its name. */
  name: string;
  node: XmlNode;
}

/** A hand-rolled vim25 client: one cookie, raw envelopes. */
class RawClient {
  cookie = '';
  constructor(readonly sdkUrl: string) {}

  async send(body: string, withCookie = true): Promise<Answer> {
    const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: '"urn:vim25/6.5"' };
    if (withCookie && this.cookie) headers.cookie = this.cookie;
    const response = await fetch(this.sdkUrl, { method: 'POST', headers, body });
    const text = await response.text();
    const setCookie = response.headers.get('set-cookie');
    if (setCookie) this.cookie = setCookie.split(';')[0] ?? '';
    const doc = parseXml(text);
    const { name, node } = bodyOf(doc);
    return { status: response.status, text, doc, name, node };
  }

  async login(): Promise<void> {
    const a = await this.send(req.login(USER, PASSWORD));
    if (a.status !== 200) throw new Error(`login failed: ${a.text}`);
  }
}

function ref(node: XmlNode | undefined): MoRef {
  const type = child(node, '@_type');
  return { type: typeof type === 'string' ? type : '', value: textOf(node) };
}

/** The typed fault of a SOAP fault answer: its xsi:type and the detail element. */
function soapFault(a: Answer): { type: string; detailName: string; detail: XmlNode; faultstring: string; faultcode: string } {
  const detail = child(a.node, 'detail');
  const [detailName, inner] = (isObject(detail) ? Object.entries(detail)[0] : undefined) ?? ['', ''];
  const type = child(inner, '@_xsi:type');
  return { type: typeof type === 'string' ? type : '', detailName, detail: inner, faultstring: textOf(child(a.node, 'faultstring')), faultcode: textOf(child(a.node, 'faultcode')) };
}

function propsOf(objectContent: XmlNode | undefined): Map<string, XmlNode> {
  return new Map(asList(child(objectContent, 'propSet')).map((p) => [textOf(child(p, 'name')), child(p, 'val') as XmlNode]));
}

async function taskInfo(c: RawClient, task: MoRef): Promise<XmlNode> {
  const a = await c.send(req.retrieveObject(task, ['info']));
  return propsOf(child(a.node, 'returnval', 'objects')).get('info') as XmlNode;
}

async function vmProps(c: RawClient, vm: MoRef, paths: string[]): Promise<Map<string, XmlNode>> {
  const a = await c.send(req.retrieveObject(vm, paths));
  return propsOf(child(a.node, 'returnval', 'objects'));
}

async function start(t: Test, scenario: Scenario, tls?: { certPem: string; keyPem: string }): Promise<{ responder: VimResponder; client: RawClient }> {
  const responder = await startVimResponder({ username: USER, password: PASSWORD, scenario, tls: tls ?? false });
  t.teardown(() => responder.stop());
  return { responder, client: new RawClient(responder.sdkUrl) };
}

function vmRef(responder: VimResponder, name: string): MoRef {
  const vm = responder.model.vms.find((v) => v.name === name);
  if (!vm) throw new Error(`no VM ${name}`);
  return vm.ref;
}


// ---------------------------------------------------------------------------------------------

interface IndexEntry {
  name: string;
  status: number;
  setsCookie: boolean;
}
const recorded = JSON.parse(readFileSync(join(RECORDINGS_DIR, 'index.json'), 'utf8')) as { exchanges: IndexEntry[] };

/**
 * Steps where the responder deliberately answers differently from vcsim 0.24 (the reason it
 * exists), each with what it answers instead.
 */
const DIFFERS_FROM_VCSIM: Record<string, { why: string; status: number; answer: (a: Answer) => string }> = {
  'consolidate-vm-disks': {
    why: 'vcsim 0.24 has no ConsolidateVMDisks_Task (MethodNotFound); the responder runs it',
    status: 200,
    answer: (a) => ref(child(a.node, 'returnval')).type,
  },
  'continue-retrieve-properties': {
    why: 'vcsim 0.24 has no ContinueRetrievePropertiesEx; the responder faults InvalidArgument on an unknown token (API reference)',
    status: 500,
    answer: (a) => soapFault(a).type,
  },
  'cancel-task-finished': {
    why: 'vcsim 0.24 has no CancelTask; the responder faults InvalidState on a finished task (API reference)',
    status: 500,
    answer: (a) => soapFault(a).type,
  },
};
const DIFFERENT_ANSWERS: Record<string, string> = { 'consolidate-vm-disks': 'Task', 'continue-retrieve-properties': 'InvalidArgument', 'cancel-task-finished': 'InvalidState' };

t.test('answers the recorded vcsim requests with XML of the same shape', async (t) => {
  const { client } = await start(t, scenarios.basic());
  const seen: string[] = [];
  await runVcsimSequence(async (name, body) => {
    const fixture = readFileSync(join(RECORDINGS_DIR, `${name}.response.xml`), 'utf8');
    const entry = recorded.exchanges.find((e) => e.name === name);
    const a = await client.send(body);
    seen.push(name);
    const differs = DIFFERS_FROM_VCSIM[name];
    if (differs) {
      t.equal(entry?.status, 500, `${name}: vcsim faulted`);
      t.same([a.status, differs.answer(a)], [differs.status, DIFFERENT_ANSWERS[name]], `${name}: ${differs.why}`);
      return a.node;
    }
    t.equal(a.status, entry?.status, `${name}: HTTP ${entry?.status} like vcsim`);
    let ours = shapeOf(a.doc);
    if (name === 'retrieve-vms-max-objects-2') {
      // vcsim ignores maxObjects; the responder pages. Apart from the token the shape is vcsim's.
      t.ok(child(a.node, 'returnval', 'token'), 'the responder returns a paging token where vcsim returns none');
      const copy = structuredClone(a.doc);
      delete (child(copy, 'soapenv:Envelope', 'soapenv:Body', 'RetrievePropertiesExResponse', 'returnval') as XmlObject).token;
      ours = shapeOf(copy);
    }
    t.same(ours, shapeOf(parseXml(fixture)), `${name}: same elements, attributes and xsi types as vcsim`);
    return a.node;
  }, { username: USER, password: PASSWORD });
  t.same(seen, recorded.exchanges.map((e) => e.name), 'every recorded exchange was replayed');
});

t.test('login, cookie and NotAuthenticated', async (t) => {
  const { responder, client } = await start(t, scenarios.basic());
  const bad = await client.send(req.login(USER, 'wrong'));
  t.equal(bad.status, 500, 'wrong password is HTTP 500');
  t.match(soapFault(bad), { faultcode: 'ServerFaultCode', type: 'InvalidLogin', detailName: 'InvalidLoginFault', faultstring: 'Login failure' });
  t.equal(client.cookie, '', 'no cookie on a failed login');

  const noSession = await client.send(req.createSnapshot(vmRef(responder, 'DC0_H0_VM0'), 'x', '', false, false));
  t.match(soapFault(noSession), { type: 'NotAuthenticated', detailName: 'NotAuthenticatedFault' });

  const ok = await client.send(req.login(USER, PASSWORD));
  t.equal(ok.status, 200);
  t.match(client.cookie, /^vmware_soap_session=[0-9a-f-]{36}$/, 'Login sets vmware_soap_session');
  t.equal(textOf(child(ok.node, 'returnval', 'key')), client.cookie.split('=')[1], 'the cookie is the session key');

  responder.expireSessions();
  const expired = await client.send(req.createContainerView());
  t.equal(soapFault(expired).type, 'NotAuthenticated', 'an expired session gets NotAuthenticated');
  const session = await client.send(req.retrieveObject({ type: 'SessionManager', value: 'SessionManager' }, ['currentSession']));
  t.equal(textOf(child(session.node, 'returnval', 'objects', 'missingSet', 'path')), 'currentSession', 'currentSession is missing once the session is gone (as vcsim)');
  const login = responder.requests.find((r) => r.method === 'Login' && r.sessionKey === undefined);
  t.equal(textOf(login?.body.userName), USER, 'requests are recorded with their parsed body');
  t.equal(textOf(login?.body.password), '(redacted)', 'but not the password');
});

t.test('1. consolidation: ConsolidateVMDisks_Task with progress clears consolidationNeeded', async (t) => {
  const { responder, client } = await start(t, scenarios.consolidation('manual'));
  await client.login();
  const vm = vmRef(responder, 'vm-needs-consolidation');
  const clean = vmRef(responder, 'vm-clean');
  t.equal(textOf((await vmProps(client, vm, ['runtime.consolidationNeeded'])).get('runtime.consolidationNeeded')), 'true');
  const before = (await vmProps(client, clean, ['runtime.consolidationNeeded'])).get('runtime.consolidationNeeded');
  t.same([textOf(before), child(before, '@_XMLSchema-instance:type')], ['false', 'xsd:boolean'], 'a set false is reported as xsd:boolean');

  const task = ref(child((await client.send(req.consolidateVmDisks(vm))).node, 'returnval'));
  t.equal(task.type, 'Task');
  const progress: string[] = [];
  for (;;) {
    const info = await taskInfo(client, task);
    const state = textOf(child(info, 'state'));
    if (state !== 'running') {
      t.equal(state, 'success', 'the consolidation succeeds');
      t.equal(textOf(child(info, 'name')), 'ConsolidateVMDisks');
      break;
    }
    progress.push(textOf(child(info, 'progress')));
    t.equal((await vmProps(client, vm, ['runtime.consolidationNeeded'])).get('runtime.consolidationNeeded') !== undefined, true);
    responder.stepTasks();
  }
  t.same(progress, ['0', '30', '60', '100'], 'progress went 0, 30, 60, 100');
  t.equal(textOf((await vmProps(client, vm, ['runtime.consolidationNeeded'])).get('runtime.consolidationNeeded')), 'false', 'consolidationNeeded is false afterwards');
});

t.test('2. paging: maxObjects, token, ContinueRetrievePropertiesEx', async (t) => {
  const { client } = await start(t, scenarios.paging(25));
  await client.login();
  const view = ref(child((await client.send(req.createContainerView())).node, 'returnval'));
  const names: string[] = [];
  const pages: number[] = [];
  let a = await client.send(req.retrieveVmsInView(view, 10));
  for (;;) {
    const objects = asList(child(a.node, 'returnval', 'objects'));
    pages.push(objects.length);
    names.push(...objects.map((o) => textOf(propsOf(o).get('name'))));
    const token = textOf(child(a.node, 'returnval', 'token'));
    if (!token) break;
    a = await client.send(req.continueRetrieve(token));
    t.equal(a.name, 'ContinueRetrievePropertiesExResponse');
  }
  t.same(pages, [10, 10, 5], 'pages of 10, 10 and 5');
  t.equal(new Set(names).size, 25, 'every VM exactly once');
  t.equal(names[0], 'page-vm-00');
  const stale = await client.send(req.continueRetrieve('1'));
  t.equal(stale.status, 500, 'a used token faults');
  t.equal(soapFault(stale).type, 'InvalidArgument');
  const all = await client.send(req.retrieveVmsInView(view));
  t.equal(asList(child(all.node, 'returnval', 'objects')).length, 25, 'no maxObjects: one page');
  t.notOk(child(all.node, 'returnval', 'token'), 'and no token');
  t.equal((await client.send(req.destroyView(view))).status, 200);
});

t.test('2b. paging: the server-side cap pages even without maxObjects', async (t) => {
  const { client } = await start(t, { ...scenarios.paging(7), maxObjectsCap: 5 });
  await client.login();
  const view = ref(child((await client.send(req.createContainerView())).node, 'returnval'));
  const first = await client.send(req.retrieveVmsInView(view));
  t.equal(asList(child(first.node, 'returnval', 'objects')).length, 5);
  const rest = await client.send(req.continueRetrieve(textOf(child(first.node, 'returnval', 'token'))));
  t.equal(asList(child(rest.node, 'returnval', 'objects')).length, 2);
  t.notOk(child(rest.node, 'returnval', 'token'), 'the last page has no token');
});

t.test('3. slow tasks: queued → running with progress → success; CancelTask', async (t) => {
  const { responder, client } = await start(t, scenarios.slowTasks('manual'));
  await client.login();
  const vm = vmRef(responder, 'slow-vm');
  const task = ref(child((await client.send(req.createSnapshot(vm, 'slow', '', false, false))).node, 'returnval'));
  const seen: string[] = [];
  for (;;) {
    const info = await taskInfo(client, task);
    const state = textOf(child(info, 'state'));
    seen.push(state === 'running' ? `running ${textOf(child(info, 'progress'))}` : state);
    if (state === 'queued') t.notOk(child(info, 'startTime'), 'a queued task has no startTime');
    if (state === 'success' || state === 'error') {
      t.ok(child(info, 'completeTime'), 'a finished task has a completeTime');
      t.equal(ref(child(info, 'result')).type, 'VirtualMachineSnapshot', 'the result is the new snapshot');
      break;
    }
    t.notOk(child(info, 'completeTime'));
    t.equal(textOf(child(info, 'cancelable')), 'true');
    responder.stepTasks();
  }
  t.same(seen, ['queued', 'running 0', 'running 30', 'running 60', 'running 100', 'success']);

  const second = ref(child((await client.send(req.createSnapshot(vm, 'cancelled', '', false, false))).node, 'returnval'));
  responder.stepTasks();
  t.equal(textOf(child(await taskInfo(client, second), 'state')), 'running');
  const cancel = await client.send(req.cancelTask(second));
  t.equal(cancel.status, 200, 'CancelTask answers');
  t.equal(cancel.name, 'CancelTaskResponse');
  const info = await taskInfo(client, second);
  t.same(
    [textOf(child(info, 'state')), textOf(child(info, 'cancelled')), child(info, 'error', 'fault', '@_XMLSchema-instance:type')],
    ['error', 'true', 'RequestCanceled'],
    'a cancelled task ends in error RequestCanceled',
  );
  const names = asList(child((await vmProps(client, vm, ['snapshot'])).get('snapshot'), 'rootSnapshotList')).map((n) => textOf(child(n, 'name')));
  t.same(names, ['slow'], 'the cancelled snapshot was never made');
  const again = await client.send(req.cancelTask(second));
  t.equal(soapFault(again).type, 'InvalidState', 'cancelling a finished task faults InvalidState');
});

t.test('3b. slow tasks on a timer progress by themselves', async (t) => {
  const { responder, client } = await start(t, scenarios.slowTasks(5));
  await client.login();
  const task = ref(child((await client.send(req.createSnapshot(vmRef(responder, 'slow-vm'), 'timed', '', false, false))).node, 'returnval'));
  const states = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const state = textOf(child(await taskInfo(client, task), 'state'));
    states.add(state);
    if (state === 'success') break;
    await new Promise((r) => setImmediate(r));
  }
  t.ok(states.has('success'), 'the task finished without stepTasks()');
});

t.test('4. conflict: a second snapshot task on a busy VM → TaskInProgress', async (t) => {
  t.test('as a task error (default)', async (t) => {
    const { responder, client } = await start(t, scenarios.conflict('task-error'));
    await client.login();
    const vm = vmRef(responder, 'busy-vm');
    const first = ref(child((await client.send(req.createSnapshot(vm, 'one', '', false, false))).node, 'returnval'));
    const a = await client.send(req.createSnapshot(vm, 'two', '', false, false));
    t.equal(a.status, 200, 'the call itself succeeds');
    const info = await taskInfo(client, ref(child(a.node, 'returnval')));
    t.equal(textOf(child(info, 'state')), 'error');
    t.equal(child(info, 'error', 'fault', '@_XMLSchema-instance:type'), 'TaskInProgress');
    t.same(ref(child(info, 'error', 'fault', 'task')), first, 'the fault names the running task');
    t.equal(textOf(child(await taskInfo(client, first), 'state')), 'running', 'the first task is unaffected');
  });
  t.test('as a SOAP fault (knob)', async (t) => {
    const { responder, client } = await start(t, scenarios.conflict('soap-fault'));
    await client.login();
    const vm = vmRef(responder, 'busy-vm');
    await client.send(req.createSnapshot(vm, 'one', '', false, false));
    const a = await client.send(req.createSnapshot(vm, 'two', '', false, false));
    t.equal(a.status, 500);
    t.match(soapFault(a), { type: 'TaskInProgress', detailName: 'TaskInProgressFault' });
    while (responder.stepTasks() > 0);
    t.equal((await client.send(req.createSnapshot(vm, 'three', '', false, false))).status, 200, 'free again once the first task is done');
  });
});

t.test('5. revert power effects: no memory → poweredOff, memory → poweredOn', async (t) => {
  const { responder, client } = await start(t, scenarios.revertPower());
  await client.login();
  const vm = vmRef(responder, 'revert-vm');
  const snapshot = (await vmProps(client, vm, ['snapshot'])).get('snapshot');
  const root = child(snapshot, 'rootSnapshotList');
  const noMemory = ref(child(root, 'snapshot'));
  const withMemory = ref(child(root, 'childSnapshotList', 'snapshot'));
  t.same([textOf(child(root, 'state')), textOf(child(root, 'childSnapshotList', 'state'))], ['poweredOff', 'poweredOn'], 'snapshot state records what a revert restores');
  t.same(ref(child(snapshot, 'currentSnapshot')), withMemory);

  const revert = async (s: MoRef) => {
    const task = ref(child((await client.send(req.revertToSnapshot(s))).node, 'returnval'));
    t.equal(textOf(child(await taskInfo(client, task), 'state')), 'success');
    return vmProps(client, vm, ['runtime.powerState', 'snapshot']);
  };
  const afterNoMemory = await revert(noMemory);
  t.equal(textOf(afterNoMemory.get('runtime.powerState')), 'poweredOff', 'reverting to a snapshot without memory leaves the VM off');
  t.same(ref(child(afterNoMemory.get('snapshot'), 'currentSnapshot')), noMemory, 'and makes it current');
  t.equal(textOf((await revert(withMemory)).get('runtime.powerState')), 'poweredOn', 'reverting to a memory snapshot leaves it on');

  const created = ref(child((await client.send(req.createSnapshot(vm, 'new', '', true, false))).node, 'returnval'));
  t.equal(textOf(child(await taskInfo(client, created), 'state')), 'success');
  const removeAll = ref(child((await client.send(req.removeAllSnapshots(vm))).node, 'returnval'));
  t.equal(textOf(child(await taskInfo(client, removeAll), 'state')), 'success');
  t.notOk((await vmProps(client, vm, ['snapshot'])).has('snapshot'), 'no snapshot property once all are removed');
});

t.test('6. faults on demand', async (t) => {
  const { responder, client } = await start(t, scenarios.faults([{ method: 'RetrievePropertiesEx', fault: faults.notAuthenticated({ type: 'PropertyCollector', value: 'propertyCollector' }) }]));
  await client.login();
  const vm = vmRef(responder, 'DC0_H0_VM0');

  const expired = await client.send(req.retrieveObject(vm, ['name']));
  t.equal(expired.status, 500);
  t.equal(soapFault(expired).type, 'NotAuthenticated', 'armed NotAuthenticated');
  t.equal(soapFault(await client.send(req.createContainerView())).type, 'NotAuthenticated', 'and the session is really gone');
  await client.login();
  t.equal(textOf((await vmProps(client, vm, ['name'])).get('name')), 'DC0_H0_VM0', 're-login works, the fault fired once');

  const cases = [
    { method: 'RemoveSnapshot_Task', fault: faults.fileLocked('[LocalDS_0] vm/vm-000001.vmdk'), body: req.removeSnapshot({ type: 'VirtualMachineSnapshot', value: 'snapshot-1' }, false), field: ['file', '[LocalDS_0] vm/vm-000001.vmdk'] },
    { method: 'PowerOnVM_Task', fault: faults.invalidState(), body: req.powerOn(vm), field: undefined },
    { method: 'CreateSnapshot_Task', fault: faults.managedObjectNotFound(vm), body: req.createSnapshot(vm, 'x', '', false, false), field: undefined },
  ];
  for (const c of cases) {
    responder.failNext({ method: c.method, fault: c.fault });
    const a = await client.send(c.body);
    t.equal(a.status, 500, `${c.method}: HTTP 500`);
    const f = soapFault(a);
    t.match(f, { faultcode: 'ServerFaultCode', type: c.fault.type, detailName: `${c.fault.type}Fault` }, `${c.method}: typed ${c.fault.type}`);
    if (c.field) t.equal(textOf(child(f.detail, c.field[0] as string)), c.field[1], `${c.fault.type} carries ${c.field[0]}`);
  }
  t.same(ref(child(soapFault(await (async () => { responder.failNext({ method: 'PowerOffVM_Task', fault: faults.managedObjectNotFound(vm) }); return client.send(req.powerOff(vm)); })()).detail, 'obj')), vm, 'ManagedObjectNotFound carries obj');

  responder.failNext({ method: 'CreateContainerView', drop: true, times: 2 });
  await t.rejects(client.send(req.createContainerView()), 'a dropped connection rejects the request');
  await t.rejects(client.send(req.createContainerView()), 'twice (times: 2)');
  t.equal((await client.send(req.createContainerView())).status, 200, 'then answers again');
  // fetch (undici) may resend a request whose kept-alive socket closed without an answer, so the
  // dropped calls can arrive more than once; at least both drops and the answered call are recorded.
  t.ok(responder.requests.filter((r) => r.method === 'CreateContainerView').length >= 3, 'dropped requests are still recorded');
});

t.test('6c. a VM removed behind the adapter\'s back', async (t) => {
  const { responder, client } = await start(t, scenarios.basic());
  await client.login();
  const vm = vmRef(responder, 'DC0_H0_VM1');
  responder.model.removeVm('DC0_H0_VM1');
  const a = await client.send(req.retrieveObject(vm, ['name']));
  t.equal(a.status, 500);
  t.match(soapFault(a), { type: 'ManagedObjectNotFound', faultstring: 'The object has already been deleted or has not been completely created' }, 'as vcsim words it in RetrievePropertiesEx');
  const call = await client.send(req.createSnapshot(vm, 'x', '', false, false));
  t.match(soapFault(call), { type: 'ManagedObjectNotFound', faultstring: `managed object not found: VirtualMachine:${vm.value}` }, 'and on a method call');
  const view = ref(child((await client.send(req.createContainerView())).node, 'returnval'));
  const names = asList(child((await client.send(req.retrieveVmsInView(view))).node, 'returnval', 'objects')).map((o) => textOf(propsOf(o).get('name')));
  t.same(names.sort(), ['DC0_C0_RP0_VM0', 'DC0_C0_RP0_VM1', 'DC0_H0_VM0'], 'the inventory no longer lists it');
});

t.test('knobs: guest shutdown, tools, unauthenticated retrieve, consolidation after remove, setScenario', async (t) => {
  const { responder, client } = await start(t, { ...scenarios.basic(), guestShutdown: 'never', unauthenticatedRetrieve: 'fault' });
  const unauth = await client.send(req.retrieveObject(vmRef(responder, 'DC0_H0_VM0'), ['name']));
  t.equal(soapFault(unauth).type, 'NotAuthenticated', "unauthenticatedRetrieve: 'fault' faults the call");
  await client.login();
  const vm = vmRef(responder, 'DC0_H0_VM0');
  t.equal((await client.send(req.shutdownGuest(vm))).name, 'ShutdownGuestResponse');
  t.equal(textOf((await vmProps(client, vm, ['runtime.powerState'])).get('runtime.powerState')), 'poweredOn', "guestShutdown: 'never' leaves the VM on");

  responder.setScenario({
    name: 'tools-off',
    description: 'no tools; removal leaves consolidation needed',
    vms: [{ name: 'no-tools', toolsRunning: false, consolidationNeededAfterRemove: true, snapshots: [{ name: 'a' }] }],
  });
  await client.login();
  const other = vmRef(responder, 'no-tools');
  t.equal(soapFault(await client.send(req.shutdownGuest(other))).type, 'ToolsUnavailable', 'ShutdownGuest without tools faults');
  t.notOk((await vmProps(client, other, ['runtime.consolidationNeeded'])).has('runtime.consolidationNeeded'), 'unset: omitted, as vcsim omits it');
  const removeAll = ref(child((await client.send(req.removeAllSnapshots(other))).node, 'returnval'));
  t.equal(textOf(child(await taskInfo(client, removeAll), 'state')), 'success');
  t.equal(textOf((await vmProps(client, other, ['runtime.consolidationNeeded'])).get('runtime.consolidationNeeded')), 'true', 'a removal can leave consolidationNeeded = true');
  const unknown = await client.send(req.retrieveObject(other, ['name', 'no.such.property']));
  t.equal(textOf(child(unknown.node, 'returnval', 'objects', 'missingSet', 'path')), 'no.such.property', 'an unknown path is a missingSet entry');
  t.equal(child(unknown.node, 'returnval', 'objects', 'missingSet', 'fault', 'fault', '@_XMLSchema-instance:type'), 'InvalidProperty');
  const unimplemented = await client.send(req.cancelRetrieve('x').replace(/CancelRetrievePropertiesEx/g, 'WaitForUpdatesEx'));
  t.match(soapFault(unimplemented), { type: 'MethodNotFound', faultstring: 'PropertyCollector:propertyCollector does not implement: WaitForUpdatesEx' }, 'unimplemented methods fault like vcsim');
});

t.test('6b. task failures: the task ends in error with a typed fault', async (t) => {
  const { responder, client } = await start(t, { ...scenarios.revertPower(), taskFailures: { RemoveSnapshot_Task: faults.fileLocked('[LocalDS_0] revert-vm/revert-vm-000001.vmdk') } });
  await client.login();
  const vm = vmRef(responder, 'revert-vm');
  const snap = ref(child((await vmProps(client, vm, ['snapshot'])).get('snapshot'), 'currentSnapshot'));
  const a = await client.send(req.removeSnapshot(snap, false));
  t.equal(a.status, 200, 'the call succeeds; the failure is in the task');
  const info = await taskInfo(client, ref(child(a.node, 'returnval')));
  t.equal(textOf(child(info, 'state')), 'error');
  t.equal(child(info, 'error', 'fault', '@_XMLSchema-instance:type'), 'FileLocked');
  t.match(textOf(child(info, 'error', 'localizedMessage')), /locked/);
});

t.test('serves HTTPS with the given certificate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vim-responder-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const certPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const { responder } = await start(t, scenarios.basic(), { certPem, keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') });
  t.match(responder.sdkUrl, /^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
  const agent = new Agent({ ca: certPem });
  t.teardown(() => agent.destroy());
  const status = await new Promise<number>((resolve, reject) => {
    const r = httpsRequest(responder.sdkUrl, { method: 'POST', agent, headers: { 'content-type': 'text/xml' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on('error', reject);
    r.end(req.retrieveServiceContent());
  });
  t.equal(status, 200, 'RetrieveServiceContent over TLS, verified against the pinned certificate');
});

t.test('onRequest sees each request before it is answered; character references are decoded', async (t) => {
  const { responder, client } = await start(t, scenarios.slowTasks('manual'));
  await client.login();
  const vm = vmRef(responder, 'slow-vm');
  const task = ref(child((await client.send(req.createSnapshot(vm, 'NAME', 'd', false, false).replace('NAME', 'line1&#xA;line2 &#233;'))).node, 'returnval'));
  const seen: string[] = [];
  // Stepping inside the hook moves the task before this very poll is answered.
  responder.onRequest = (q) => {
    seen.push(q.method);
    responder.stepTasks();
  };
  t.equal(textOf(child(await taskInfo(client, task), 'state')), 'running', 'queued → running by the hook, seen by the same poll');
  t.same(seen, ['RetrievePropertiesEx']);
  responder.onRequest = undefined;
  while (responder.stepTasks() > 0);
  const names = asList(child((await vmProps(client, vm, ['snapshot'])).get('snapshot'), 'rootSnapshotList')).map((n) => textOf(child(n, 'name')));
  t.same(names, ['line1\nline2 é'], 'a numeric character reference in a request is the character it stands for');
});
