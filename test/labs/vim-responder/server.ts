/**
 * A scriptable vim25 SOAP server for what vcsim 0.24 cannot show (consolidation, paging, running
 * tasks with progress, cancellation, snapshot conflicts, power effects of a revert, faults and
 * dropped connections on demand). Its XML copies vcsim's, recorded in test/fixtures/vmware/vcsim-0.24/.
 * See ./README.md for what is recorded and what is taken from the vSphere API reference.
 *
 * Used by tests, so it must not import tap.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { snapshotInfoXml, taskInfoXml, userSessionXml, VimModel, type Session, type VmState } from './model.ts';
import { xmlEscape, type MoRef } from './requests.ts';
import type { FaultOnDemand, Scenario } from './scenario.ts';
import {
  el,
  faults,
  missingSetXml,
  moRef,
  propSetXml,
  responseEnvelope,
  soapFaultEnvelope,
  taskErrorXml,
  VimFaultError,
  type VimFault,
} from './soap-xml.ts';
import { asList, isObject, parseXml, textOf, type XmlNode, type XmlObject } from './xml.ts';

export interface StartVimResponderOptions {
  /** PEM certificate and key to serve HTTPS; false or absent serves plain HTTP. */
  tls?: { certPem: string; keyPem: string } | false;
  username: string;
  password: string;
  scenario: Scenario;
}

export interface RecordedRequest {
  /** The operation, e.g. 'CreateSnapshot_Task'. */
  method: string;
  /** The operation element's children with namespace prefixes removed (`_this`, `specSet`, …); Login's password redacted. */
  body: XmlObject;
  /** The session the request carried, if it was valid at the time. */
  sessionKey: string | undefined;
  soapAction: string | undefined;
}

export interface VimResponder {
  /** `http(s)://127.0.0.1:<port>`, no path. */
  url: string;
  /** `<url>/sdk`: the vim25 endpoint. */
  sdkUrl: string;
  /** Every request in arrival order (including faulted and dropped ones). */
  readonly requests: RecordedRequest[];
  /** The live model (VMs, snapshots, tasks, sessions) for assertions and for changes behind the adapter's back. */
  readonly model: VimModel;
  /** A fresh inventory and knobs; sessions survive (the adapter stays logged in). */
  setScenario(scenario: Scenario): void;
  /** Arms a fault or a dropped connection for the next call(s) of `entry.method`. */
  failNext(entry: FaultOnDemand): void;
  /** Advances every task with 'manual' timing by one step; returns how many moved. */
  stepTasks(): number;
  /** Forgets every session, as a vCenter restart or session expiry would. */
  expireSessions(): void;
  /**
   * Called with each request after it is recorded and before it is answered, so a test can act at
   * an exact point of the exchange (step a task when the adapter polls it, abort mid-task) without sleeping.
   */
  onRequest: ((request: RecordedRequest) => void) | undefined;
  stop(): Promise<void>;
}

const COOKIE = 'vmware_soap_session';
const UNAUTHENTICATED_OK = new Set(['RetrieveServiceContent', 'Login', 'RetrievePropertiesEx']);
const OBJECT_GONE = 'The object has already been deleted or has not been completely created';
const SERVICE_CONTENT_FILE = new URL('./service-content.xml', import.meta.url);

/** Drops element-name prefixes (node-soap may write `tns:Login`) and xmlns declarations; keeps attribute names. */
function normalize(node: XmlNode): XmlNode {
  if (typeof node === 'string') return node;
  if (Array.isArray(node)) return node.map(normalize);
  const out: XmlObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('@_xmlns')) continue;
    const name = key.startsWith('@_') || key === '#text' ? key : key.slice(key.indexOf(':') + 1);
    const normal = normalize(value);
    const existing = out[name];
    out[name] = existing === undefined ? normal : [...asList(existing), ...asList(normal)];
  }
  return out;
}

function refArg(node: XmlNode | undefined, what: string): MoRef {
  const type = isObject(node) ? node['@_type'] : undefined;
  if (typeof type !== 'string') throw new VimFaultError(faults.invalidArgument(what, `missing or malformed ${what}`));
  return { type, value: textOf(node) };
}

function boolArg(node: XmlNode | undefined, fallback: boolean): boolean {
  const text = textOf(node);
  return text === '' ? fallback : text === 'true' || text === '1';
}

/** The xsi type of a selectSet entry, whatever the prefix (`xsi:type`, `XMLSchema-instance:type`, value `vim25:TraversalSpec`). */
function xsiTypeOf(node: XmlNode): string {
  if (!isObject(node)) return '';
  const attr = Object.entries(node).find(([k]) => k.startsWith('@_') && k.endsWith(':type'));
  const value = attr && typeof attr[1] === 'string' ? attr[1] : '';
  return value.slice(value.indexOf(':') + 1);
}

function sessionCookie(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === COOKIE) return rest.join('=').replace(/^"|"$/g, '');
  }
  return undefined;
}

export async function startVimResponder(opts: StartVimResponderOptions): Promise<VimResponder> {
  const serviceContent = readFileSync(SERVICE_CONTENT_FILE, 'utf8').trim();
  let scenario = opts.scenario;
  let model = new VimModel(scenario);
  let armed: FaultOnDemand[] = (scenario.faults ?? []).map((f) => ({ ...f }));
  const sessions = new Map<string, Session>();
  const requests: RecordedRequest[] = [];

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/sdk') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      respond(req, res, Buffer.concat(chunks).toString('utf8'));
    });
  };

  function send(res: ServerResponse, status: number, xml: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'text/xml; charset=utf-8', ...headers }).end(xml);
  }

  function respond(req: IncomingMessage, res: ServerResponse, text: string): void {
    let method: string;
    let args: XmlObject;
    try {
      const doc = normalize(parseXml(text));
      const body = isObject(doc) && isObject(doc.Envelope) ? doc.Envelope.Body : undefined;
      const entry = isObject(body) ? Object.entries(body).find(([k]) => !k.startsWith('@_')) : undefined;
      if (!entry || (!isObject(entry[1]) && entry[1] !== '')) throw new Error('no operation in soap Body');
      method = entry[0];
      args = isObject(entry[1]) ? entry[1] : {};
    } catch {
      send(res, 500, soapFaultEnvelope({ type: 'InvalidRequest', message: 'malformed SOAP request', fields: [] }));
      return;
    }
    const key = sessionCookie(req);
    const session = key !== undefined ? sessions.get(key) : undefined;
    const soapAction = typeof req.headers.soapaction === 'string' ? req.headers.soapaction : undefined;
    // Recorded requests end up in test output; the password never does.
    const recorded: RecordedRequest = { method, body: 'password' in args ? { ...args, password: '(redacted)' } : args, sessionKey: session?.key, soapAction };
    requests.push(recorded);
    responder.onRequest?.(recorded);

    const planned = armed.find((f) => f.method === method);
    if (planned) {
      planned.times = (planned.times ?? 1) - 1;
      if (planned.times <= 0) armed = armed.filter((f) => f !== planned);
      if ('drop' in planned) {
        req.socket.destroy();
        return;
      }
      // An injected NotAuthenticated means the session is gone, as after a real expiry.
      if (planned.fault.type === 'NotAuthenticated' && session) sessions.delete(session.key);
      send(res, 500, soapFaultEnvelope(planned.fault));
      return;
    }

    try {
      const self = method === 'RetrieveServiceContent' ? undefined : refArg(args._this, '_this');
      if (!session && !UNAUTHENTICATED_OK.has(method)) throw new VimFaultError(faults.notAuthenticated(self ?? { type: 'ServiceInstance', value: 'ServiceInstance' }));
      if (session) {
        session.callCount++;
        session.lastActiveTime = new Date().toISOString();
      }
      const { xml, headers } = dispatch(method, args, self, session, req);
      send(res, 200, xml, headers);
    } catch (e) {
      // A bug in the responder must reach the test as a loud fault, not crash the test process.
      const fault: VimFault = e instanceof VimFaultError ? e.fault : { type: 'SystemError', message: `vim responder bug: ${(e as Error).message}`, fields: [{ name: 'reason', value: 'vim responder bug' }] };
      send(res, 500, soapFaultEnvelope(fault));
    }
  }

  function dispatch(method: string, args: XmlObject, self: MoRef | undefined, session: Session | undefined, req: IncomingMessage): { xml: string; headers?: Record<string, string> } {
    const ok = (inner = '') => ({ xml: responseEnvelope(method, inner) });
    const task = (ref: MoRef) => ok(moRef('returnval', ref));
    const me = self as MoRef;
    switch (method) {
      case 'RetrieveServiceContent':
        return ok(`<returnval>${serviceContent}</returnval>`);
      case 'Login': {
        if (textOf(args.userName) !== opts.username || textOf(args.password) !== opts.password) throw new VimFaultError(faults.invalidLogin());
        const created = model.login(textOf(args.userName), req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '', req.headers['user-agent'] ?? '');
        sessions.set(created.key, created);
        created.callCount = 1;
        return { xml: responseEnvelope(method, `<returnval>${userSessionXml(created)}</returnval>`), headers: { 'set-cookie': `${COOKIE}=${created.key}; HttpOnly` } };
      }
      case 'Logout':
        if (session) sessions.delete(session.key);
        return ok();
      case 'CreateContainerView': {
        const container = refArg(args.container, 'container');
        if (container.type !== 'Folder') throw new VimFaultError(faults.managedObjectNotFound(container));
        const types = asList(args.type).map((t) => textOf(t));
        const id = `session[${session?.key ?? ''}]${randomUUID()}`;
        model.views.set(id, { session: session?.key ?? '', type: types[0] ?? 'VirtualMachine' });
        return ok(moRef('returnval', { type: 'ContainerView', value: id }));
      }
      case 'DestroyView':
        if (!model.views.delete(me.value)) throw new VimFaultError(faults.managedObjectNotFound(me));
        return ok();
      case 'RetrievePropertiesEx': {
        const objects = retrieve(args, session);
        const maxObjects = Number.parseInt(textOf(isObject(args.options) ? args.options.maxObjects : undefined), 10);
        return ok(retrieveResult(model.page(objects, Number.isNaN(maxObjects) ? undefined : maxObjects)));
      }
      case 'ContinueRetrievePropertiesEx':
        return ok(retrieveResult(model.continuePage(textOf(args.token))));
      case 'CancelRetrievePropertiesEx':
        model.cancelPage(textOf(args.token));
        return ok();
      case 'CreateSnapshot_Task':
        return task(model.createSnapshot(me, textOf(args.name), textOf(args.description), boolArg(args.memory, false), boolArg(args.quiesce, false)));
      case 'RevertToSnapshot_Task':
        return task(model.revertToSnapshot(me, boolArg(args.suppressPowerOn, false)));
      case 'RemoveSnapshot_Task':
        return task(model.removeSnapshot(me, boolArg(args.removeChildren, false)));
      case 'RemoveAllSnapshots_Task':
        return task(model.removeAllSnapshots(me));
      case 'ConsolidateVMDisks_Task':
        return task(model.consolidateVmDisks(me));
      case 'PowerOnVM_Task':
        return task(model.powerOn(me));
      case 'PowerOffVM_Task':
        return task(model.powerOff(me));
      case 'ShutdownGuest':
        model.shutdownGuest(me);
        return ok();
      case 'CancelTask':
        model.cancelTask(me);
        return ok();
      default:
        throw new VimFaultError(faults.methodNotFound(me ?? { type: 'ServiceInstance', value: 'ServiceInstance' }, method));
    }
  }

  function retrieveResult(page: { objects: string[]; token: string | undefined }): string {
    if (page.objects.length === 0) return '';
    return `<returnval>${page.token !== undefined ? el('token', page.token) : ''}${page.objects.join('')}</returnval>`;
  }

  /** ObjectContents for every object the specSets select, rendered in vcsim's shape. */
  function retrieve(args: XmlObject, session: Session | undefined): string[] {
    if (!session && (scenario.unauthenticatedRetrieve ?? 'missing-set') === 'fault') {
      throw new VimFaultError(faults.notAuthenticated({ type: 'PropertyCollector', value: 'propertyCollector' }));
    }
    const out: string[] = [];
    const seen = new Set<string>();
    for (const spec of asList(args.specSet)) {
      if (!isObject(spec)) continue;
      const paths = new Map<string, string[]>();
      for (const ps of asList(spec.propSet)) {
        if (!isObject(ps)) continue;
        paths.set(textOf(ps.type), [...(paths.get(textOf(ps.type)) ?? []), ...asList(ps.pathSet).map((p) => textOf(p))]);
      }
      for (const os of asList(spec.objectSet)) {
        if (!isObject(os)) continue;
        const obj = refArg(os.obj, 'obj');
        const targets: MoRef[] = [];
        if (!boolArg(os.skip, false)) targets.push(obj);
        if (obj.type === 'ContainerView') {
          const view = model.views.get(obj.value);
          if (!view) throw new VimFaultError(faults.managedObjectNotFound(obj, OBJECT_GONE));
          const traversesView = asList(os.selectSet).some((s) => isObject(s) && xsiTypeOf(s) === 'TraversalSpec' && textOf(s.path) === 'view');
          if (traversesView && view.type === 'VirtualMachine') targets.push(...model.vms.map((v) => v.ref));
        }
        for (const target of targets) {
          const wanted = paths.get(target.type);
          if (wanted === undefined || seen.has(`${target.type}:${target.value}`)) continue;
          seen.add(`${target.type}:${target.value}`);
          out.push(objectContent(target, wanted, session));
        }
      }
    }
    return out;
  }

  function objectContent(obj: MoRef, paths: string[], session: Session | undefined): string {
    const props = propertiesOf(obj, session);
    let inner = '';
    let missing = '';
    for (const path of [...new Set(paths)]) {
      if (!session) {
        missing += missingSetXml(path, faults.notAuthenticated(obj, 'System.Read'));
        continue;
      }
      if (!props.has(path)) {
        missing += missingSetXml(path, faults.invalidProperty(path));
        continue;
      }
      // Unset properties are omitted, as vcsim and vCenter do (no snapshot, consolidationNeeded unset).
      const value = props.get(path)?.();
      if (value) inner += propSetXml(path, value[0], value[1]);
    }
    return `<objects>${moRef('obj', obj)}${inner}${missing}</objects>`;
  }

  type Getter = () => [xsiType: string, inner: string] | undefined;

  function propertiesOf(obj: MoRef, session: Session | undefined): Map<string, Getter> {
    try {
      return gettersOf(obj, session);
    } catch (e) {
      // vcsim words a missing object differently in RetrievePropertiesEx than in a method call (recorded).
      if (e instanceof VimFaultError && e.fault.type === 'ManagedObjectNotFound') throw new VimFaultError(faults.managedObjectNotFound(obj, OBJECT_GONE));
      throw e;
    }
  }

  function gettersOf(obj: MoRef, session: Session | undefined): Map<string, Getter> {
    switch (obj.type) {
      case 'VirtualMachine': {
        const vm: VmState = model.vm(obj);
        return new Map<string, Getter>([
          ['name', () => ['xsd:string', xmlEscape(vm.name)]],
          ['config.instanceUuid', () => ['xsd:string', vm.instanceUuid]],
          ['runtime.powerState', () => ['VirtualMachinePowerState', vm.powerState]],
          ['runtime.consolidationNeeded', () => (vm.consolidationNeeded === undefined ? undefined : ['xsd:boolean', String(vm.consolidationNeeded)])],
          ['snapshot', () => (vm.roots.length === 0 ? undefined : ['VirtualMachineSnapshotInfo', snapshotInfoXml(vm)])],
        ]);
      }
      case 'Task': {
        const task = model.task(obj);
        return new Map<string, Getter>([
          ['info', () => ['TaskInfo', taskInfoXml(task, taskErrorXml)]],
          ['info.state', () => ['TaskInfoState', task.state]],
          ['info.progress', () => (task.progress === undefined ? undefined : ['xsd:int', String(task.progress)])],
          ['info.error', () => (task.error ? ['LocalizedMethodFault', taskErrorXml(task.error).replace(/^<error>|<\/error>$/g, '')] : undefined)],
        ]);
      }
      case 'SessionManager':
        return new Map<string, Getter>([['currentSession', () => (session ? ['UserSession', userSessionXml(session)] : undefined)]]);
      default:
        throw new VimFaultError(faults.managedObjectNotFound(obj, OBJECT_GONE));
    }
  }

  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, handler) : createHttpServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  const responder: VimResponder = {
    url,
    sdkUrl: `${url}/sdk`,
    onRequest: undefined,
    requests,
    get model() {
      return model;
    },
    setScenario(next) {
      model.stop();
      scenario = next;
      model = new VimModel(next);
      armed = (next.faults ?? []).map((f) => ({ ...f }));
    },
    failNext(entry) {
      armed.push({ ...entry });
    },
    stepTasks: () => model.stepTasks(),
    expireSessions: () => sessions.clear(),
    async stop() {
      model.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return responder;
}

export type { VimFault };
