/** Options of a `kind: azure` target and the capabilities they declare. */
import t from 'tap';
import { ProviderError, capabilityMismatches } from '../../providers/contract.ts';
import { parseOptions } from '../../providers/azure/options.ts';
import { azureCapabilities, createAzureProvider, powerOf } from '../../providers/azure/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const SUB = '00000000-0000-0000-0000-000000000000';
const base = { subscriptionId: SUB, resourceGroups: ['rg'] };

t.test('defaults', async (t) => {
  const o = parseOptions('az', base);
  t.same(o.auth, { type: 'default' }, 'neither credential nor managedIdentity: DefaultAzureCredential');
  t.equal(o.endpoint, 'https://management.azure.com');
  t.equal(o.incremental, true);
  t.same(o.offline, { stop: 'deallocate', shutdownTimeoutSec: 120, forcePowerOff: false });
  t.same(o.snapshotRate, { max: 7, windowMs: 300_000 });
  t.equal(o.pollIntervalMs, 2000);
  t.equal(o.requestTimeoutMs, 60_000);
  t.same(parseOptions('az', { ...base, managedIdentity: true }).auth, { type: 'managedIdentity' });
  const s = parseOptions('az', { ...base, endpoint: 'https://127.0.0.1:4443/', credential: { tenantId: 't', clientId: 'c', clientSecret: 's3cr3t' } });
  t.same(s.auth, { type: 'secret', tenantId: 't', clientId: 'c', clientSecret: 's3cr3t', authorityHost: 'https://login.microsoftonline.com' });
  t.equal(s.endpoint, 'https://127.0.0.1:4443');
});

t.test('refusals name the key, never the value', async (t) => {
  const secret = 'do-not-echo-me';
  const bad = (input: unknown, re: RegExp) => {
    const e = t.throws(() => parseOptions('az', input)) as unknown;
    t.ok(e instanceof ProviderError && e.kind === 'invalid', 'invalid');
    t.match((e as Error).message, re);
    t.notMatch((e as Error).message, secret);
  };
  bad({ ...base, subscriptionId: 'nope' }, /subscriptionId/);
  bad({ ...base, resourceGroups: [] }, /resourceGroups/);
  bad({ ...base, resourceGroups: ['a', 'A'] }, /names 'A' twice/);
  bad({ subscriptionId: SUB }, /missing option 'resourceGroups'/);
  bad({ ...base, credential: { tenantId: 't', clientId: 'c', clientSecret: secret }, managedIdentity: true }, /exclude each other/);
  bad({ ...base, credential: { tenantId: 't', clientId: 'c', clientSecret: secret, extra: secret } }, /unknown option 'credential.extra'/);
  bad({ ...base, endpoint: 'http://plain' }, /endpoint/);
  bad({ ...base, offline: { stop: 'hibernate' } }, /offline.stop/);
  bad({ ...base, snapshotRate: { max: 0 } }, /snapshotRate.max/);
  bad({ ...base, bogus: secret }, /unknown option 'bogus'/);
});

t.test('capabilities: readiness, flat modes, the create budget from the options', async (t) => {
  const caps = azureCapabilities(parseOptions('az', { ...base, snapshotRate: { max: 3, windowSec: 1.5 } }));
  t.equal(caps.readiness, true);
  t.same(caps.limits.createRate, [{ per: 'disk', max: 3, windowMs: 1500, reason: 'Azure allows 3 incremental snapshots per disk every 2 s' }]);
  t.equal(caps.modes.crash.supported, true);
  t.equal(caps.modes.offline.supported, true);
  t.equal(caps.modes.memory.supported, false);
  t.equal(caps.modes.quiesced.supported, false);
  t.equal(caps.limits.maxNameBytes, 256);
  const p = createAzureProvider('az', base, { log: silentLogger() });
  t.same(capabilityMismatches(p), []);
  t.same(['PowerState/running', 'PowerState/stopped', 'PowerState/deallocated', 'PowerState/deallocating', 'PowerState/starting', 'x'].map(powerOf), ['running', 'off', 'off', 'transitioning', 'transitioning', 'unknown']);
});
