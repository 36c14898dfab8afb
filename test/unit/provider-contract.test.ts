/**
 * The contract's own rules: name rules as data, and the registry refusing a provider whose optional
 * methods and declared capabilities disagree.
 */
import t from 'tap';
import { capabilityMismatches, ProviderError, SnapvisorError, snapshotTextProblems, type Capabilities } from '../../providers/contract.ts';
import { registryOf } from '../../providers/index.ts';
import { KVM_LIMITS } from '../../providers/kvm/naming.ts';
import { createFakeProvider, fakeSpec } from '../fixtures/fake-provider.ts';

const limits = (nameRules: Capabilities['limits']['nameRules'], maxNameBytes = 20): Capabilities['limits'] => ({ maxNameBytes, nameRules });

t.test('snapshotTextProblems: empty, byte length, forbid, require, description rules', async (t) => {
  t.same(snapshotTextProblems(limits([]), { name: 'fine', description: '' }), []);
  t.match(snapshotTextProblems(limits([]), { name: '  ', description: '' }), [/empty/]);
  t.match(snapshotTextProblems(limits([]), { name: 'é'.repeat(11), description: '' }), [/22 bytes; the target allows 20/], 'bytes, not characters');
  const rules = limits([
    { pattern: '^-', effect: 'forbid', reason: 'no leading dash' },
    { pattern: '^[a-z]', effect: 'require', reason: 'must start with a letter' },
    { pattern: 'secret', effect: 'forbid', field: 'description', reason: 'no secrets in descriptions' },
  ]);
  t.same(snapshotTextProblems(rules, { name: '-x', description: '' }), ['no leading dash', 'must start with a letter']);
  t.same(snapshotTextProblems(rules, { name: 'ok', description: 'a secret' }), ['no secrets in descriptions']);
  t.same(snapshotTextProblems(rules, { name: 'secret', description: '' }), [], 'a description rule does not apply to the name');
  t.same(snapshotTextProblems(limits([{ pattern: '\\u0000', effect: 'forbid', reason: 'NUL' }]), { name: 'a\0b', description: '' }), ['NUL'], 'escapes in the pattern source');
});

t.test('KVM rules as data refuse what libvirt cannot take and keep hostile-but-harmless names', async (t) => {
  for (const bad of ['a/b', '007', '-rf', 'a\0b']) t.ok(snapshotTextProblems(KVM_LIMITS, { name: bad, description: '' }).length > 0, JSON.stringify(bad));
  t.same(snapshotTextProblems(KVM_LIMITS, { name: 'nightly "q" ; $(x) 🦀\nline2', description: '' }), []);
});

t.test('capabilityMismatches and the registry: methods present exactly when declared', async (t) => {
  const ok = createFakeProvider('lab');
  t.same(capabilityMismatches(ok), []);
  t.doesNotThrow(() => registryOf([{ spec: fakeSpec('lab'), provider: ok }]));

  const noRevert = createFakeProvider('lab', { capabilities: { revert: false, consolidate: false } });
  t.equal(noRevert.revertSnapshot, undefined, 'the fake, like an adapter, has no revertSnapshot when it declares none');
  t.same(capabilityMismatches(noRevert), []);

  const lies = createFakeProvider('lab');
  delete lies.revertSnapshot;
  t.match(capabilityMismatches(lies), ['declares revert but has no revertSnapshot()']);
  const err = (() => {
    try {
      registryOf([{ spec: fakeSpec('lab'), provider: lies }]);
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  t.type(err, ProviderError, 'the registry refuses it');
  t.match((err as Error).message, /target 'lab'.*declares revert but has no revertSnapshot/);

  const extra = createFakeProvider('lab', { capabilities: { consolidate: false } });
  extra.consolidate = async () => ({ merged: 0, message: '' });
  t.match(capabilityMismatches(extra), ['has consolidate() but does not declare consolidate']);

  const badRule = createFakeProvider('lab', { capabilities: { limits: { nameRules: [{ pattern: '(', effect: 'forbid', reason: 'x' }] } } });
  t.match(capabilityMismatches(badRule), [/not a valid regular expression/]);
});

t.test('one error base: ProviderError is a SnapvisorError with a kind-derived code', async (t) => {
  const e = new ProviderError('kvm', 'throttled', 'slow down', { retryAfterMs: 2000, nativeCode: 'X1' });
  t.type(e, SnapvisorError);
  t.match(e, { kind: 'throttled', code: 'SNAPVISOR_ERR_THROTTLED', retry: 'transient', retryAfterMs: 2000, extra: { target: 'kvm', nativeCode: 'X1' } });
  t.equal(new SnapvisorError('conflict', 'SNAPVISOR_ERR_X', 'engine').retry, 'final', "the engine's own errors are final unless said otherwise");
});

t.test('a mode declared unrevertable: revert of such a snapshot is 422 before any job; the fake (and the suite) refuse it too', async (t) => {
  const { harness, meta } = await import('./engine-harness.ts');
  const refused = 'external overlays cannot be reverted here';
  const h = await harness(t, {
    targets: [{ provider: { vms: [{ name: 'web01', snapshots: [{ name: 'disk-only', mode: 'crash' }, { name: 'with-ram', mode: 'memory' }] }], capabilities: { modes: { crash: { supported: true, revertRefused: refused } } } } }],
  });
  const err = await h.engine
    .submit({ kind: 'snapshot.revert', snapshotId: await h.snapshotId('web01', 'disk-only') }, meta())
    .then(() => undefined, (e: unknown) => e);
  t.match(err, { kind: 'unsupported', code: 'SNAPVISOR_ERR_REVERT_UNSUPPORTED', extra: { mode: 'crash', reason: refused } });
  t.equal((await h.engine.listJobs({ limit: 10 })).items.length, 0, 'no job stored');
  const { job } = await h.engine.submit({ kind: 'snapshot.revert', snapshotId: await h.snapshotId('web01', 'with-ram') }, meta('tester', undefined, 'h2'));
  t.equal((await h.settle(job.id)).state, 'succeeded', 'another mode still reverts');
});

t.test('createOptionProblems: only declared names, of the declared type; own keys only', async (t) => {
  const { createOptionProblems } = await import('../../providers/contract.ts');
  const declared = { incremental: { type: 'boolean' as const, description: '' }, tier: { type: 'string' as const, description: '' }, n: { type: 'integer' as const, description: '' } };
  t.same(createOptionProblems(declared, { incremental: false, tier: 'hot', n: 3 }), []);
  t.same(createOptionProblems(undefined, {}), []);
  t.match(createOptionProblems(undefined, { incremental: true }), [/unknown create option 'incremental' \(this target takes none\)/]);
  t.match(createOptionProblems(declared, { incremental: 1, tier: false, n: 2.5 }), [/'incremental' must be a boolean/, /'tier' must be a string/, /'n' must be an integer/]);
  t.match(createOptionProblems(declared, { toString: true, hasOwnProperty: 1 }), [/unknown create option 'toString'/, /unknown create option 'hasOwnProperty'/], 'inherited names are not options');
});
