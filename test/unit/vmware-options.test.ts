/** providers/vmware/options.ts: eager validation, TLS policy, secrets never echoed. */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { parseOptions } from '../../providers/vmware/options.ts';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const base = { url: 'https://vc.example/sdk', username: 'snap@vsphere.local', password: 'p4ss-secret-xyz' };

function problems(input: unknown): string {
  try {
    parseOptions('vc', input);
  } catch (e) {
    if (e instanceof ProviderError && e.kind === 'invalid') return e.message;
    throw e;
  }
  return '';
}

t.test('defaults and the TLS policy', async (t) => {
  const o = parseOptions('vc', base);
  t.same(o.tls, { kind: 'system' }, 'verified against the system CAs by default');
  t.equal(o.requestTimeoutSec, 60);
  t.equal(o.taskTimeoutSec, 3600);
  t.equal(o.pageSize, 1000);
  t.same(o.offline, { shutdownTimeoutSec: 120, forcePowerOff: false });
  t.same(parseOptions('vc', { ...base, ca: PEM }).tls, { kind: 'ca', ca: PEM });
  t.same(parseOptions('vc', { ...base, thumbprint: 'ab:'.repeat(19) + 'cd' }).tls, { kind: 'thumbprint', thumbprint: 'AB:'.repeat(19) + 'CD' });
  t.same(parseOptions('vc', { ...base, insecure: true }).tls, { kind: 'insecure' });
  t.same(parseOptions('vc', { ...base, url: 'http://127.0.0.1:8989/sdk' }).tls, { kind: 'plain' }, 'plain http for local test servers');
});

t.test('problems name their keys; secrets are never echoed', async (t) => {
  t.match(problems({ ...base, pasword: 'x' }), /unknown option 'pasword'/);
  t.match(problems({ url: base.url, username: 'u' }), /missing option 'password'/);
  t.match(problems({ ...base, ca: PEM, insecure: true }), /exclude each other/);
  t.match(problems({ ...base, thumbprint: 'not-a-thumbprint' }), /thumbprint/);
  t.match(problems({ ...base, ca: 'hello' }), /'ca' must be a PEM/);
  t.match(problems({ ...base, url: 'ftp://vc/sdk' }), /https/);
  t.match(problems({ ...base, url: 'https://user:pw@vc/sdk' }), /credentials/);
  t.match(problems({ ...base, offline: { forcePowerOff: 'yes' } }), /offline\.forcePowerOff/);
  const msg = problems({ ...base, password: 42, extra: true });
  t.notMatch(problems({ ...base, ca: 'p4ss-secret-xyz' }), /p4ss-secret-xyz/, 'a bad ca value is not echoed');
  t.match(msg, /password/);
  t.notMatch(problems({ ...base, pageSize: 0 }), /p4ss-secret-xyz/);
});
