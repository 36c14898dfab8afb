/**
 * config/snapvisor.schema.json, as an editor uses it: written by the generator, checked by ajv
 * (JSON Schema 2020-12, not TypeBox), with a target block typed by its kind's adapter options. Every
 * example below also goes through the daemon's own path (config loader + the adapter's
 * parseOptions), so the schema and the daemon agree on what is valid.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import { supportedKinds } from '../../providers/index.ts';
import { parseOptions as azureOptions } from '../../providers/azure/options.ts';
import { parseOptions as hypervOptions } from '../../providers/hyperv/options.ts';
import { parseOptions as kvmOptions } from '../../providers/kvm/options.ts';
import { parseOptions as virtualboxOptions } from '../../providers/virtualbox/options.ts';
import { parseOptions as vmwareOptions } from '../../providers/vmware/options.ts';
import { configJsonSchema } from '../../src/config/json-schema.ts';
import { resolveConfig } from '../../src/config/load.ts';
import { TARGET_OPTIONS_SCHEMAS, TargetConfigByKind } from '../../src/config/targets.ts';

const root = new URL('../../', import.meta.url);
const committed = readFileSync(new URL('config/snapvisor.schema.json', root), 'utf8');
const ajv = new Ajv2020.default({ allErrors: true, strict: true, strictRequired: false });
const validate = ajv.compile(JSON.parse(committed) as Record<string, unknown>);
const tokens = [{ name: 'ops', sha256: 'a'.repeat(64), scopes: ['read'] }];
const config = (...targets: Record<string, unknown>[]) => ({ tokens, targets });
const errorsOf = () => (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);

const PARSERS: Record<keyof typeof TARGET_OPTIONS_SCHEMAS, (target: string, options: unknown) => unknown> = {
  kvm: kvmOptions,
  virtualbox: virtualboxOptions,
  vmware: vmwareOptions,
  hyperv: hypervOptions,
  azure: azureOptions,
};

const HOST_KEY = 'SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8';
const EXAMPLES: Record<keyof typeof TARGET_OPTIONS_SCHEMAS, Record<string, unknown>> = {
  kvm: {
    name: 'lab-kvm',
    kind: 'kvm',
    concurrency: 4,
    uri: 'qemu:///system',
    ssh: { host: '10.0.0.5', port: 22, username: 'snap', privateKey: 'env:KVM_KEY', hostKey: HOST_KEY },
    snapshotStyle: 'external',
    offlineMerge: 'refuse',
    consolidate: { maxChainDepth: 2, timeoutSec: 600 },
  },
  virtualbox: {
    name: 'studio',
    kind: 'virtualbox',
    vboxmanage: '/usr/bin/VBoxManage',
    ssh: { host: 'studio.example', username: 'vbox', password: 'env:VBOX_PASSWORD', hostKey: HOST_KEY, maxChannels: 4 },
    commandTimeoutSec: 120,
    offline: { shutdownTimeoutSec: 60, forcePowerOff: true },
  },
  vmware: {
    name: 'vc1',
    kind: 'vmware',
    url: 'https://vc.example/sdk',
    username: 'svc-snap@vsphere.local',
    password: 'env:VC_PASSWORD',
    thumbprint: Array.from({ length: 20 }, () => 'AB').join(':'),
    taskTimeoutSec: 1800,
    pageSize: 500,
    offline: { forcePowerOff: false },
  },
  hyperv: {
    name: 'hv1',
    kind: 'hyperv',
    ssh: { host: 'hv1.example', username: 'snap', password: 'env:HV_PASSWORD', hostKey: HOST_KEY, shell: 'powershell' },
    powershell: 'powershell',
    commandTimeoutSec: 300,
    mergeWaitSec: 120,
    offline: { shutdownTimeoutSec: 90, forcePowerOff: false },
  },
  azure: {
    name: 'azure-prod',
    kind: 'azure',
    concurrency: 4,
    subscriptionId: '00000000-0000-0000-0000-000000000000',
    resourceGroups: ['prod-rg'],
    credential: { tenantId: 'tenant', clientId: 'client', clientSecret: 'env:AZ_SECRET', authorityHost: 'https://login.microsoftonline.com' },
    ca: 'file:/etc/snapvisor/azure-ca.pem',
    endpoint: 'https://management.azure.com',
    offline: { stop: 'powerOff', shutdownTimeoutSec: 120, forcePowerOff: false },
    snapshotRate: { max: 7, windowSec: 300 },
    pollIntervalMs: 2000,
  },
};

/** A key that another kind has, or none has: refused in that kind's block. */
const WRONG: Record<keyof typeof TARGET_OPTIONS_SCHEMAS, [string, unknown]> = {
  kvm: ['vboxmanage', 'VBoxManage'],
  virtualbox: ['uri', 'qemu:///system'],
  vmware: ['ssh', { host: 'h', username: 'u', password: 'p', hostKey: HOST_KEY }],
  hyperv: ['uri', 'qemu:///system'],
  azure: ['ssh', { host: 'h', username: 'u', password: 'p', hostKey: HOST_KEY }],
};

t.test('the committed schema file is what the generator writes', async (t) => {
  t.equal(committed, configJsonSchema(), 'run `npm run config:schema`');
  const dir = mkdtempSync(path.join(tmpdir(), 'config-schema-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'schema.json');
  execFileSync(process.execPath, ['--import', 'tsx', new URL('src/config/write-schema.ts', root).pathname, out], { cwd: new URL('.', root).pathname });
  t.equal(readFileSync(out, 'utf8'), committed, 'the `npm run config:schema` script writes the same bytes');
});

t.test('every kind this build can run has a typed target block, made of its adapter’s own schema', async (t) => {
  t.same(Object.keys(TARGET_OPTIONS_SCHEMAS).sort(), supportedKinds().sort());
  const branches = TargetConfigByKind.anyOf as { properties: Record<string, unknown> }[];
  for (const [kind, options] of Object.entries(TARGET_OPTIONS_SCHEMAS)) {
    const branch = branches.find((b) => (b.properties.kind as { const?: string }).const === kind);
    t.ok(branch, `${kind} has a branch`);
    for (const [key, schema] of Object.entries(options.properties)) t.equal(branch!.properties[key], schema, `${kind}.${key} is the adapter's declaration, not a copy`);
    t.same(Object.keys(branch!.properties).sort(), ['concurrency', 'kind', 'name', ...Object.keys(options.properties)].sort(), `${kind}: nothing else`);
  }
  const json = JSON.parse(committed) as { properties: { targets: { items: { allOf: { if: unknown; then: { properties: Record<string, unknown> } }[] } } } };
  const inFile = json.properties.targets.items.allOf;
  t.same(inFile.map((b) => (b.then.properties.kind as { const: string }).const).sort(), Object.keys(TARGET_OPTIONS_SCHEMAS).sort(), 'the file has one branch per kind');
  const vmwareBranch = inFile.find((b) => (b.then.properties.kind as { const: string }).const === 'vmware')!;
  t.match(vmwareBranch.then.properties.password, { description: /^env:NAME reads an environment variable, file:\/path reads a file/ }, 'secret keys say how to reference a secret');
  for (const b of inFile) t.same(b.if, { properties: { kind: { const: (b.then.properties.kind as { const: string }).const } }, required: ['kind'] }, 'chosen by kind');
});

for (const [kind, example] of Object.entries(EXAMPLES) as [keyof typeof EXAMPLES, Record<string, unknown>][]) {
  t.test(`${kind}: a full target block validates, in the schema and in the daemon`, async (t) => {
    t.ok(validate(config(example)), errorsOf().join('\n'));
    const env = { VBOX_PASSWORD: 'p', VC_PASSWORD: 'p', KVM_KEY: 'k', HV_PASSWORD: 'p', AZ_SECRET: 's' };
    // The Azure example's `ca` is a file reference: read it from a real file.
    const caDir = mkdtempSync(path.join(tmpdir(), 'config-schema-ca-'));
    t.teardown(() => rmSync(caDir, { recursive: true, force: true }));
    writeFileSync(path.join(caDir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const withCa = kind === 'azure' ? { ...example, ca: `file:${path.join(caDir, 'ca.pem')}` } : example;
    const resolved = resolveConfig(config(withCa), 'test', { env, baseDir: '/' });
    t.ok(PARSERS[kind](example.name as string, resolved.targets[0]!.options), 'the adapter accepts it');
    const minimal = kind === 'vmware' ? { url: 'https://vc/sdk', username: 'u', password: 'p' } : kind === 'azure' ? { subscriptionId: '00000000-0000-0000-0000-000000000000', resourceGroups: ['rg'] } : {};
    t.ok(validate(config({ name: `${kind}-min`, kind, ...minimal })), `${kind}: a minimal block`);
  });

  t.test(`${kind}: a wrong option is rejected, in the schema and in the daemon`, async (t) => {
    const [key, value] = WRONG[kind];
    const wrong = { ...example, [key]: value };
    t.notOk(validate(config(wrong)), `${key} is not a ${kind} option`);
    t.same(
      errorsOf().filter((e) => !e.includes('must match "then" schema')),
      [`/targets/0 must NOT have additional properties {"additionalProperty":"${key}"}`],
      'one precise error: only the block’s own kind is checked',
    );
    t.throws(() => PARSERS[kind]('t', { ...wrong, name: undefined, kind: undefined, concurrency: undefined }), new RegExp(`unknown option '${key}'`));

    t.notOk(validate(config({ ...example, offline: { shutdownTimeoutSec: 'soon' } })), 'a wrong type inside a nested option');
    t.ok(errorsOf().some((e) => e.startsWith('/targets/0/offline/shutdownTimeoutSec must be number')), errorsOf().join('\n'));
    t.notOk(validate(config({ ...example, commandTimeoutSec: -1, requestTimeoutSec: -1 })), 'a value out of range');
  });
}

t.test('kind is the discriminator: a block is checked against its own kind only', async (t) => {
  t.notOk(validate(config({ ...EXAMPLES.virtualbox, kind: 'kvm' })), 'VirtualBox options under kind: kvm');
  t.notOk(validate(config({ name: 'x', kind: 'azure' })), 'azure requires subscriptionId and resourceGroups');
  t.same(errorsOf().filter((e) => !e.includes('must match "then" schema')), [
    `/targets/0 must have required property 'subscriptionId' {"missingProperty":"subscriptionId"}`,
    `/targets/0 must have required property 'resourceGroups' {"missingProperty":"resourceGroups"}`,
  ]);
  t.notOk(validate(config({ name: 'x', kind: 'hyperv-azure' })), 'an unknown kind');
  t.same(errorsOf(), ['/targets/0/kind must be equal to one of the allowed values {"allowedValues":["kvm","vmware","virtualbox","hyperv","azure"]}']);
  t.notOk(validate(config({ name: 'x' })), 'kind is required');
  t.notOk(validate(config({ name: 'x', kind: 'vmwre' })));
  t.notOk(validate(config({ name: 'x', kind: 'vmware' })), 'vmware requires url, username, password');
  t.notOk(validate(config({ ...EXAMPLES.kvm, ssh: { ...(EXAMPLES.kvm.ssh as object), shell: 'cmd' } })), 'shell is a Windows ssh option');
  t.notOk(validate(config({ ...EXAMPLES.kvm, name: 'Bad Name' })), 'the common fields are checked too');
  t.notOk(validate({ targets: [] }), 'tokens are required');
});

t.test('the example configuration validates against the schema file', async (t) => {
  const example = parse(readFileSync(new URL('config/snapvisor.example.yaml', root), 'utf8')) as unknown;
  t.ok(validate(example), errorsOf().join('\n'));
});
