// The VMware lab itself: vcsim built from Debian's govmomi, reached with raw vim25 SOAP over
// node:https (no SOAP library), so a failure here is the lab's, not the adapter's.
import t from 'tap';
import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type Server } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ensureVcsimBuilt, startVcsim, type VcsimLab } from './lab.ts';

interface SoapReply {
  status: number;
  body: string;
  cookie: string | undefined;
  peerFingerprint: string | undefined;
}

const xmlText = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** POSTs one vim25 body. TLS is verified against `ca` (the lab's caPem unless told otherwise). */
function soap(lab: VcsimLab, body: string, opts: { cookie?: string; ca?: string } = {}): Promise<SoapReply> {
  const envelope =
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    `<soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;
  const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: 'urn:vim25/7.0' };
  if (opts.cookie) headers.cookie = opts.cookie;
  const secure = lab.sdkUrl.startsWith('https:');
  const send = secure ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(lab.sdkUrl, { method: 'POST', headers, agent: false, ...(secure ? { ca: opts.ca ?? lab.caPem } : {}) }, (res) => {
      const socket = res.socket as TLSSocket;
      const peerFingerprint = secure ? socket.getPeerCertificate().fingerprint : undefined;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const setCookie = res.headers['set-cookie']?.find((c) => c.startsWith('vmware_soap_session='));
        resolve({ status: res.statusCode ?? 0, body: text, cookie: setCookie?.split(';')[0], peerFingerprint });
      });
    });
    req.on('error', reject);
    req.end(envelope);
  });
}

const moRef = (tag: string, type: string, value: string) => `<${tag} type="${type}">${xmlText(value)}</${tag}>`;

function refIn(xml: string, tag: string): string {
  const m = new RegExp(`<${tag} type="[A-Za-z]+">([^<]+)</${tag}>`).exec(xml);
  if (!m?.[1]) throw new Error(`no <${tag}> in ${xml.slice(0, 500)}`);
  return m[1];
}

async function serviceContent(lab: VcsimLab) {
  const r = await soap(lab, `<RetrieveServiceContent xmlns="urn:vim25">${moRef('_this', 'ServiceInstance', 'ServiceInstance')}</RetrieveServiceContent>`);
  if (r.status !== 200) throw new Error(`RetrieveServiceContent: HTTP ${r.status}: ${r.body}`);
  return {
    reply: r,
    rootFolder: refIn(r.body, 'rootFolder'),
    propertyCollector: refIn(r.body, 'propertyCollector'),
    viewManager: refIn(r.body, 'viewManager'),
    sessionManager: refIn(r.body, 'sessionManager'),
  };
}

function login(lab: VcsimLab, sessionManager: string, password: string): Promise<SoapReply> {
  return soap(
    lab,
    `<Login xmlns="urn:vim25">${moRef('_this', 'SessionManager', sessionManager)}` +
      `<userName>${xmlText(lab.username)}</userName><password>${xmlText(password)}</password></Login>`,
  );
}

/** CreateContainerView(rootFolder, VirtualMachine, recursive) + ONE RetrievePropertiesEx over its `view`. */
async function vmNames(lab: VcsimLab, cookie: string): Promise<{ names: string[]; body: string }> {
  const sc = await serviceContent(lab);
  const view = await soap(
    lab,
    `<CreateContainerView xmlns="urn:vim25">${moRef('_this', 'ViewManager', sc.viewManager)}${moRef('container', 'Folder', sc.rootFolder)}` +
      '<type>VirtualMachine</type><recursive>true</recursive></CreateContainerView>',
    { cookie },
  );
  if (view.status !== 200) throw new Error(`CreateContainerView: HTTP ${view.status}: ${view.body}`);
  const viewRef = refIn(view.body, 'returnval');
  const props = await soap(
    lab,
    `<RetrievePropertiesEx xmlns="urn:vim25">${moRef('_this', 'PropertyCollector', sc.propertyCollector)}<specSet>` +
      '<propSet><type>VirtualMachine</type><pathSet>name</pathSet></propSet>' +
      `<objectSet>${moRef('obj', 'ContainerView', viewRef)}<skip>true</skip>` +
      '<selectSet xsi:type="TraversalSpec"><type>ContainerView</type><path>view</path><skip>false</skip></selectSet>' +
      '</objectSet></specSet><options></options></RetrievePropertiesEx>',
    { cookie },
  );
  if (props.status !== 200) throw new Error(`RetrievePropertiesEx: HTTP ${props.status}: ${props.body}`);
  const names = [...props.body.matchAll(/<name>name<\/name><val[^>]*>([^<]*)<\/val>/g)].map((m) => m[1] ?? '');
  return { names, body: props.body };
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

t.test('build: both binaries exist and a second call is cached', async (t) => {
  const a = await ensureVcsimBuilt();
  for (const bin of [a.vcsim, a.govmomiBench]) accessSync(bin, constants.X_OK);
  t.same(await ensureVcsimBuilt(), a);
});

t.test('login over raw SOAP: the right password opens a session, a wrong one faults InvalidLogin', async (t) => {
  const lab = await startVcsim({ dir: t.testdir() });
  t.teardown(() => lab.stop());
  t.match(lab.sdkUrl, /^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
  t.equal(lab.username, 'snapvisor');
  t.equal(lab.vmCount, 4, 'default VPX inventory: 4 VMs');
  t.notMatch(readFileSync(`/proc/${lab.pid}/cmdline`, 'utf8'), lab.password, 'the password is not in argv (ps)');

  const sc = await serviceContent(lab);
  t.match(sc.reply.body, /<apiType>VirtualCenter<\/apiType>/);
  t.equal(sc.sessionManager, 'SessionManager');

  const bad = await login(lab, sc.sessionManager, `${lab.password}x`);
  t.equal(bad.status, 500);
  t.match(bad.body, /<faultstring>Login failure<\/faultstring>/);
  t.match(bad.body, /InvalidLogin/);
  t.equal(bad.cookie, undefined, 'no session cookie on failure');
  const blankUser = await soap(
    lab,
    `<Login xmlns="urn:vim25">${moRef('_this', 'SessionManager', sc.sessionManager)}<userName>someone</userName><password>${xmlText(lab.password)}</password></Login>`,
  );
  t.match(blankUser.body, /InvalidLogin/, 'the user name is checked too');

  const ok = await login(lab, sc.sessionManager, lab.password);
  t.equal(ok.status, 200, ok.body);
  t.match(ok.body, new RegExp(`<userName>${lab.username}</userName>`));
  t.ok(ok.cookie, 'vmware_soap_session cookie set');

  const { names } = await vmNames(lab, ok.cookie ?? '');
  t.same(names.sort(), ['DC0_C0_RP0_VM0', 'DC0_C0_RP0_VM1', 'DC0_H0_VM0', 'DC0_H0_VM1']);
  const anonymous = await vmNames(lab, '').catch((e: Error) => e.message);
  t.match(anonymous, /NotAuthenticated/, 'no cookie, no inventory');
});

t.test('TLS: caPem pins the server; the thumbprint is its SHA-1; another lab\'s certificate does not verify it', async (t) => {
  const [a, b] = await Promise.all([startVcsim({ dir: `${t.testdir()}/a` }), startVcsim({ dir: `${t.testdir()}/b` })]);
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  const r = await serviceContent(a);
  t.equal(r.reply.peerFingerprint, a.thumbprint, 'the thumbprint is what the server presents');
  t.match(a.thumbprint, /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
  const der = Buffer.from(a.caPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  t.equal(a.thumbprint, createHash('sha1').update(der).digest('hex').toUpperCase().match(/../g)?.join(':'));
  t.not(a.thumbprint, b.thumbprint, 'each lab has its own certificate');

  await t.rejects(soap(a, '<RetrieveServiceContent xmlns="urn:vim25"/>', { ca: b.caPem }), /self[- ]signed|unable to verify|certificate/i);
  // Node's default trust store does not know the lab's certificate either.
  await t.rejects(
    new Promise((resolve, reject) => httpsRequest(a.sdkUrl, { method: 'POST', agent: false }, resolve).on('error', reject).end()),
    { code: /SELF_SIGNED|UNABLE_TO_VERIFY/ },
  );
});

t.test('plain HTTP on request', async (t) => {
  const lab = await startVcsim({ dir: t.testdir(), tls: false, username: 'alice', password: 'p&<ss' });
  t.teardown(() => lab.stop());
  t.match(lab.sdkUrl, /^http:\/\/127\.0\.0\.1:\d+\/sdk$/);
  t.equal(lab.caPem, '');
  t.equal(lab.thumbprint, '');
  const sc = await serviceContent(lab);
  t.equal((await login(lab, sc.sessionManager, 'p&<ss')).status, 200, 'a password that needs XML escaping');
  t.equal((await login(lab, sc.sessionManager, 'p&<s')).status, 500);
});

t.test('restart: same port and certificate, new process, old sessions gone; stop frees the port', async (t) => {
  const dir = t.testdir();
  const lab = await startVcsim({ dir });
  let stopped = false;
  t.teardown(() => (stopped ? undefined : lab.stop()));
  const sc = await serviceContent(lab);
  const session = await login(lab, sc.sessionManager, lab.password);
  const cookie = session.cookie ?? '';
  t.equal((await vmNames(lab, cookie)).names.length, 4);

  const { pid, port, thumbprint } = lab;
  await lab.restart();
  t.not(lab.pid, pid, 'a fresh process');
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the old one is gone');
  t.equal(lab.port, port);
  const after = await serviceContent(lab);
  t.equal(after.reply.peerFingerprint, thumbprint, 'the pinned certificate still verifies');
  const lost = await vmNames(lab, cookie).catch((e: Error) => e.message);
  t.match(lost, /NotAuthenticated/, 'the session did not survive the restart');
  const again = await login(lab, after.sessionManager, lab.password);
  t.equal((await vmNames(lab, again.cookie ?? '')).names.length, 4, 'a new login works');

  const lastPid = lab.pid;
  await lab.stop();
  stopped = true;
  await lab.stop();
  t.throws(() => process.kill(lastPid, 0), { code: 'ESRCH' });
  await t.rejects(serviceContent(lab), { code: 'ECONNREFUSED' });
  const server = await listenOn(port);
  t.pass(`port ${port} is free again`);
  await new Promise((resolve) => server.close(resolve));
  t.same(readdirSync(`${dir}/tmp`), [], 'vcsim removed its datastore directory');
});

t.test('a 1,000-VM inventory (for the benchmark) comes back from one RetrievePropertiesEx', async (t) => {
  const lab = await startVcsim({ dir: t.testdir(), vms: 500 });
  t.teardown(() => lab.stop());
  t.equal(lab.vmCount, 1000);
  const sc = await serviceContent(lab);
  const session = await login(lab, sc.sessionManager, lab.password);
  const { names, body } = await vmNames(lab, session.cookie ?? '');
  t.equal(names.length, 1000);
  t.equal(new Set(names).size, 1000, 'distinct names');
  t.ok(names.includes('DC0_H0_VM499') && names.includes('DC0_C0_RP0_VM499'));
  t.notMatch(body, /<token>/, 'vcsim 0.24 does not page (no ContinueRetrievePropertiesEx token)');
});

t.test('a vcsim that dies during start-up is reported with its stderr', async (t) => {
  // vcsim refuses a blank password (it would otherwise accept any login).
  await t.rejects(startVcsim({ dir: t.testdir(), password: '' }), /exited during start-up[\s\S]*-username and -password must not be empty/);
  await t.rejects(startVcsim({ dir: t.testdir(), vms: -1 }), /non-negative integer/);
});
