/**
 * The vim25 transport: one node-soap client per target over its own HTTP client (soap-http.ts), with the
 * shipped WSDL subset (wsdl/vim25.wsdl, parsed once per process and shared by every target).
 *
 * - TLS is verified by default (system CAs); `ca` pins a PEM; `thumbprint` checks the server
 *   certificate's SHA-1 on the handshake, before a byte of the request is written; `insecure`
 *   skips verification and is logged as a warning once. A plain-http URL (local test servers) is
 *   warned about too.
 * - node-soap has no cookies: the session cookie is kept by this target's HTTP client (never read
 *   from node-soap's shared last-response headers, which are unsafe under concurrency).
 * - Login happens lazily, once; a call that meets NotAuthenticated (session expired, server
 *   restarted) logs in again and is retried once, transparently.
 * - Every call honours the caller's AbortSignal and the per-request timeout.
 * - Errors leave as VimFault / VimTransportError (faults.ts), never as HTTP or node-soap errors:
 *   those carry the request body, and the Login body holds the password.
 *
 * Arguments are built in the schema's sequence order: node-soap emits elements in key order.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import soap from 'soap';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../contract.ts';
import { packageFile } from '../shared/package-file.ts';
import { createSoapHttp } from './soap-http.ts';
import { VimFault, VimTransportError, httpStatusError, transportErrorFrom, vimFaultFromSoapError } from './faults.ts';
import type { TlsPolicy } from './options.ts';
import { asArray, moRefOf, objectProps, toSoap, type MoRef } from './parse.ts';

const WSDL_PATH = pathToFileURL(packageFile('providers', 'vmware', 'wsdl', 'vim25.wsdl'));
/** Logout on close must not hold a shutdown up. */
const LOGOUT_TIMEOUT_MS = 5000;

/** node-soap options shared by every client (the parsed WSDL keeps some of them). */
const SOAP_OPTIONS = {
  // Snapshot names and descriptions are user text: keep their leading/trailing whitespace.
  preserveWhitespace: true,
};

let wsdlLoad: Promise<soap.WSDL> | undefined;

/** The parsed WSDL subset, loaded once per process. */
export function loadWsdl(): Promise<soap.WSDL> {
  wsdlLoad ??= new Promise<soap.WSDL>((resolve, reject) => {
    const wsdl = new soap.WSDL(readFileSync(WSDL_PATH, 'utf8'), WSDL_PATH.href, SOAP_OPTIONS);
    wsdl.onReady((err?: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(wsdl)));
  }).catch((e: unknown) => {
    wsdlLoad = undefined;
    throw e;
  });
  return wsdlLoad;
}

export interface VimClientConfig {
  /** https://host/sdk (http:// for local test servers). */
  url: string;
  username: string;
  password: string;
  tls: TlsPolicy;
  requestTimeoutMs: number;
  log: Logger;
}

export interface CallOptions {
  signal: AbortSignal;
}

/** The service's singletons, from RetrieveServiceContent. */
export interface ServiceRefs {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  about: { fullName: string; apiVersion: string; instanceUuid: string | null };
}

/** PropertyFilterSpec pieces, in the schema's sequence order. */
export interface TraversalSpecArg {
  name: string;
  type: string;
  path: string;
  skip: boolean;
}
export interface ObjectSpecArg {
  obj: MoRef;
  skip?: boolean;
  selectSet?: TraversalSpecArg[];
}
export interface PropertySpecArg {
  type: string;
  pathSet: string[];
}
export interface FilterSpecArg {
  propSet: PropertySpecArg[];
  objectSet: ObjectSpecArg[];
}

export interface VimClient {
  serviceRefs(opts: CallOptions): Promise<ServiceRefs>;
  /**
   * One round trip (RetrieveServiceContent, no session needed) and the server's clock from its
   * HTTP Date header, carried forward to now; undefined when the server sent no Date.
   */
  serverTime(opts: CallOptions): Promise<string | undefined>;
  /** All ObjectContents of one RetrievePropertiesEx, following continuation tokens. */
  retrieve(spec: FilterSpecArg, opts: CallOptions & { maxObjects?: number }): Promise<unknown[]>;
  createContainerView(container: MoRef, types: string[], recursive: boolean, opts: CallOptions): Promise<MoRef>;
  destroyView(view: MoRef, opts: CallOptions): Promise<void>;
  createSnapshotTask(vm: MoRef, args: { name: string; description: string; memory: boolean; quiesce: boolean }, opts: CallOptions): Promise<MoRef>;
  revertToSnapshotTask(snapshot: MoRef, opts: CallOptions): Promise<MoRef>;
  removeSnapshotTask(snapshot: MoRef, removeChildren: boolean, consolidate: boolean, opts: CallOptions): Promise<MoRef>;
  removeAllSnapshotsTask(vm: MoRef, opts: CallOptions): Promise<MoRef>;
  consolidateDisksTask(vm: MoRef, opts: CallOptions): Promise<MoRef>;
  powerOnTask(vm: MoRef, opts: CallOptions): Promise<MoRef>;
  powerOffTask(vm: MoRef, opts: CallOptions): Promise<MoRef>;
  shutdownGuest(vm: MoRef, opts: CallOptions): Promise<void>;
  cancelTask(task: MoRef, opts: CallOptions): Promise<void>;
  /** Logout (best effort) and release the connections. */
  close(): Promise<void>;
}

/** Checks the peer's SHA-1 on the handshake; a mismatch destroys the socket before the request is written. */
class ThumbprintAgent extends https.Agent {
  constructor(
    private readonly thumbprint: string,
    options: https.AgentOptions,
  ) {
    // The chain is not verified (vCenter certificates are often self-signed): the pin replaces it.
    super({ ...options, rejectUnauthorized: false });
  }

  override createConnection(options: unknown, callback: unknown): Duplex {
    const create = (https.Agent.prototype as unknown as { createConnection(o: unknown, cb: unknown): Duplex }).createConnection;
    const socket = create.call(this, options, callback) as TLSSocket;
    socket.prependOnceListener('secureConnect', () => {
      const seen = socket.getPeerCertificate().fingerprint;
      if (seen?.toUpperCase() !== this.thumbprint) {
        const err = Object.assign(new Error('server certificate thumbprint mismatch'), { code: 'ERR_VMWARE_THUMBPRINT_MISMATCH' });
        socket.destroy(err);
      }
    });
    return socket;
  }
}

function agentFor(tls: TlsPolicy): http.Agent {
  const base = { keepAlive: true, maxSockets: 16 };
  switch (tls.kind) {
    case 'plain':
      return new http.Agent(base);
    case 'system':
      return new https.Agent(base);
    case 'ca':
      return new https.Agent({ ...base, ca: tls.ca });
    case 'thumbprint':
      return new ThumbprintAgent(tls.thumbprint, base);
    case 'insecure':
      return new https.Agent({ ...base, rejectUnauthorized: false });
  }
}

/** An HTTP/node-soap error → VimFault | VimTransportError | a plain Error with a safe message. */
function classify(err: unknown): Error {
  const fault = vimFaultFromSoapError(err);
  if (fault) return fault;
  const transport = transportErrorFrom(err);
  if (transport) return transport;
  const status = (err as { response?: { status?: unknown } } | null)?.response?.status;
  if (typeof status === 'number' && status >= 300) return httpStatusError(status);
  const first = err instanceof Error ? (err.message.split(/[\n:]/)[0] ?? '') : String(err);
  return new Error(`vim25 call failed: ${first.slice(0, 200)}`);
}

type SoapMethod = (args: unknown, options?: unknown) => Promise<[unknown, ...unknown[]]>;

export function createVimClient(config: VimClientConfig): VimClient {
  const agent = agentFor(config.tls);
  if (config.tls.kind === 'insecure') config.log.warn({ url: config.url }, 'TLS certificate verification is disabled for this target (insecure: true)');
  if (config.tls.kind === 'plain') config.log.warn({ url: config.url }, 'plain HTTP: the password and session cookie cross the network unencrypted');

  const transport = createSoapHttp(agent);

  let soapClient: Promise<soap.Client> | undefined;
  const getSoapClient = () => {
    // node-soap types `request` as an axios instance; it only ever calls it as a function (lib/http.js).
    soapClient ??= loadWsdl().then((wsdl) => new soap.Client(wsdl, config.url, { ...SOAP_OPTIONS, request: transport.request as unknown as soap.IOptions['request'] }));
    return soapClient;
  };

  /** One HTTP round trip; no session handling. */
  async function raw(method: string, args: unknown, signal: AbortSignal | undefined, timeoutMs = config.requestTimeoutMs): Promise<unknown> {
    if (signal?.aborted) throw new VimTransportError('aborted', 'cancelled', false, 'ABORT_ERR');
    const client = await getSoapClient();
    const fn = (client as unknown as Record<string, SoapMethod>)[`${method}Async`];
    if (!fn) throw new Error(`vim25 method ${method} is not in the shipped WSDL`);
    try {
      const [result] = await fn.call(client, args, { timeout: timeoutMs, ...(signal ? { signal } : {}) });
      return result;
    } catch (e) {
      throw classify(e);
    } finally {
      // node-soap keeps the last request XML on the client; the Login one holds the password.
      (client as unknown as { lastRequest?: unknown; lastMessage?: unknown }).lastRequest = undefined;
      (client as unknown as { lastMessage?: unknown }).lastMessage = undefined;
    }
  }

  let refs: Promise<ServiceRefs> | undefined;
  function serviceRefs(): Promise<ServiceRefs> {
    refs ??= (async () => {
      const result = (await raw('RetrieveServiceContent', { _this: toSoap({ type: 'ServiceInstance', value: 'ServiceInstance' }) }, undefined)) as { returnval?: Record<string, unknown> } | null;
      const sc = result?.returnval ?? {};
      const need = (key: string): MoRef => {
        const ref = moRefOf(sc[key]);
        if (!ref) throw new VimFault('InvalidResponse', `the service content has no ${key}`);
        return ref;
      };
      const about = (sc.about ?? {}) as Record<string, unknown>;
      return {
        rootFolder: need('rootFolder'),
        propertyCollector: need('propertyCollector'),
        viewManager: need('viewManager'),
        sessionManager: need('sessionManager'),
        about: {
          fullName: typeof about.fullName === 'string' ? about.fullName : 'unknown',
          apiVersion: typeof about.apiVersion === 'string' ? about.apiVersion : 'unknown',
          instanceUuid: typeof about.instanceUuid === 'string' ? about.instanceUuid : null,
        },
      };
    })().catch((e: unknown) => {
      refs = undefined;
      throw e;
    });
    return refs;
  }

  // Shared by concurrent callers, so it runs without any one caller's signal (its own timeout only).
  let session: Promise<ServiceRefs> | undefined;
  function login(): Promise<ServiceRefs> {
    session ??= (async () => {
      const sc = await serviceRefs();
      transport.forgetSession();
      await raw('Login', { _this: toSoap(sc.sessionManager), userName: config.username, password: config.password }, undefined);
      return sc;
    })().catch((e: unknown) => {
      session = undefined;
      throw e;
    });
    return session;
  }

  /**
   * A call in the session: logs in first if needed; on NotAuthenticated, logs in again and retries
   * once. `check` may turn an answer into a fault (a read answered without a session).
   */
  async function call(method: string, args: (sc: ServiceRefs) => unknown, opts: CallOptions, check: (result: unknown) => void = () => {}): Promise<unknown> {
    if (opts.signal.aborted) throw new VimTransportError('aborted', 'cancelled', false, 'ABORT_ERR');
    const used = login();
    const sc = await abortable(used, opts.signal);
    try {
      const result = await raw(method, args(sc), opts.signal);
      check(result);
      return result;
    } catch (e) {
      if (!(e instanceof VimFault) || e.faultType !== 'NotAuthenticated') throw e;
      config.log.info({ method }, 'vSphere session lost; logging in again');
      if (session === used) session = undefined; // another caller may have logged in already
      const again = await abortable(login(), opts.signal);
      const result = await raw(method, args(again), opts.signal);
      check(result);
      return result;
    }
  }

  /** vcsim answers a PropertyCollector read without a session with missingSet NotAuthenticated, not a fault. */
  function sessionChecked(result: unknown): void {
    const page = (result as { returnval?: Record<string, unknown> } | null)?.returnval;
    for (const content of asArray(page?.objects)) {
      if (objectProps(content).missing.some((m) => m.faultType === 'NotAuthenticated')) {
        throw new VimFault('NotAuthenticated', 'the session is not authenticated');
      }
    }
  }

  async function task(method: string, args: (sc: ServiceRefs) => unknown, opts: CallOptions): Promise<MoRef> {
    const result = (await call(method, args, opts)) as { returnval?: unknown } | null;
    const ref = moRefOf(result?.returnval);
    if (!ref) throw new VimFault('InvalidResponse', `${method} returned no task`);
    return ref;
  }

  function traversal(t: TraversalSpecArg) {
    // Without xsi:type the server reads a plain SelectionSpec and faults InvalidArgument (reference).
    return { attributes: { xsi_type: { type: 'TraversalSpec', xmlns: 'urn:vim25' } }, name: t.name, type: t.type, path: t.path, skip: t.skip };
  }

  function filterSpec(spec: FilterSpecArg) {
    return {
      propSet: spec.propSet.map((p) => ({ type: p.type, pathSet: p.pathSet })),
      objectSet: spec.objectSet.map((o) => ({
        obj: toSoap(o.obj),
        ...(o.skip === undefined ? {} : { skip: o.skip }),
        ...(o.selectSet ? { selectSet: o.selectSet.map(traversal) } : {}),
      })),
    };
  }

  return {
    serviceRefs: (opts) => abortable(login(), opts.signal),
    async serverTime(opts) {
      const sent = Date.now();
      await raw('RetrieveServiceContent', { _this: toSoap({ type: 'ServiceInstance', value: 'ServiceInstance' }) }, opts.signal);
      const date = transport.lastServerDate();
      // Only this call's answer (or a later one) tells the time now.
      if (!date || date.receivedMs < sent) return undefined;
      return new Date(date.serverMs + (Date.now() - date.receivedMs)).toISOString();
    },

    async retrieve(spec, opts) {
      const options = opts.maxObjects === undefined ? {} : { maxObjects: opts.maxObjects };
      const first = (await call('RetrievePropertiesEx', (sc) => ({ _this: toSoap(sc.propertyCollector), specSet: [filterSpec(spec)], options }), opts, sessionChecked)) as { returnval?: Record<string, unknown> } | null;
      const objects: unknown[] = [];
      let page = first?.returnval;
      for (;;) {
        if (!page) break; // an empty result has no returnval
        objects.push(...asArray(page.objects));
        const token = typeof page.token === 'string' && page.token !== '' ? page.token : undefined;
        if (!token) break;
        const next = (await call('ContinueRetrievePropertiesEx', (sc) => ({ _this: toSoap(sc.propertyCollector), token }), opts, sessionChecked)) as { returnval?: Record<string, unknown> } | null;
        page = next?.returnval;
      }
      return objects;
    },

    async createContainerView(container, types, recursive, opts) {
      const result = (await call('CreateContainerView', (sc) => ({ _this: toSoap(sc.viewManager), container: toSoap(container), type: types, recursive }), opts)) as { returnval?: unknown } | null;
      const ref = moRefOf(result?.returnval);
      if (!ref) throw new VimFault('InvalidResponse', 'CreateContainerView returned no view');
      return ref;
    },

    async destroyView(view, opts) {
      await call('DestroyView', () => ({ _this: toSoap(view) }), opts);
    },

    createSnapshotTask: (ref, a, opts) =>
      task('CreateSnapshot_Task', () => ({ _this: toSoap(ref), name: a.name, description: a.description, memory: a.memory, quiesce: a.quiesce }), opts),
    revertToSnapshotTask: (snapshot, opts) => task('RevertToSnapshot_Task', () => ({ _this: toSoap(snapshot) }), opts),
    removeSnapshotTask: (snapshot, removeChildren, consolidate, opts) =>
      task('RemoveSnapshot_Task', () => ({ _this: toSoap(snapshot), removeChildren, consolidate }), opts),
    removeAllSnapshotsTask: (ref, opts) => task('RemoveAllSnapshots_Task', () => ({ _this: toSoap(ref), consolidate: true }), opts),
    consolidateDisksTask: (ref, opts) => task('ConsolidateVMDisks_Task', () => ({ _this: toSoap(ref) }), opts),
    powerOnTask: (ref, opts) => task('PowerOnVM_Task', () => ({ _this: toSoap(ref) }), opts),
    powerOffTask: (ref, opts) => task('PowerOffVM_Task', () => ({ _this: toSoap(ref) }), opts),
    async shutdownGuest(ref, opts) {
      await call('ShutdownGuest', () => ({ _this: toSoap(ref) }), opts);
    },
    async cancelTask(ref, opts) {
      await call('CancelTask', () => ({ _this: toSoap(ref) }), opts);
    },

    async close() {
      const current = session;
      session = undefined;
      if (current) {
        try {
          const sc = await current;
          await raw('Logout', { _this: toSoap(sc.sessionManager) }, undefined, LOGOUT_TIMEOUT_MS);
        } catch (e) {
          config.log.debug({ err: e instanceof Error ? e.message : String(e) }, 'vSphere logout failed (ignored)');
        }
      }
      transport.forgetSession();
      agent.destroy();
    },
  };
}

/** Rejects as soon as `signal` aborts, without cancelling the shared promise for other callers. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new VimTransportError('aborted', 'cancelled', false, 'ABORT_ERR'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new VimTransportError('aborted', 'cancelled', false, 'ABORT_ERR'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
