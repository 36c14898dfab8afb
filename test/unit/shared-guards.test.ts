import t from 'tap';
import { ProviderError, type CallContext } from '../../providers/contract.ts';
import { checkId, createGuards, morefIds, uuidIds } from '../../providers/shared/guards.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const ctx = (signal: AbortSignal): CallContext => ({ signal, log: silentLogger(), progress: () => {} });

t.test('err: provider, kind, options and the target prefix', async (t) => {
  const { err, withTarget } = createGuards('kvm', 'lab1');
  const e = err('conflict', 'busy', { nativeCode: 'X', retry: 'transient' });
  t.ok(e instanceof ProviderError);
  t.same([e.provider, e.kind, e.nativeCode, e.retry], ['kvm', 'conflict', 'X', 'transient']);
  t.equal(e.message, "[snapvisor] [kvm] target 'lab1': busy");
  t.equal(err('not_found', 'x').retry, 'final', 'the kind decides the retry class by default');
  t.same(withTarget({ what: 'list VMs', mutating: false }), { what: "target 'lab1': list VMs", mutating: false });
});

t.test('assertNotAborted: transient before start, silent otherwise', async (t) => {
  const { assertNotAborted } = createGuards('virtualbox', 'vb');
  t.doesNotThrow(() => assertNotAborted(ctx(new AbortController().signal), 'list VMs'));
  const e = await rejection((async () => assertNotAborted(ctx(AbortSignal.abort()), 'list VMs'))());
  t.same([e.kind, e.retry], ['transient', 'transient']);
  t.match(e.message, /target 'vb': list VMs: cancelled before start/);
});

t.test('UUID ids: lower-cased; anything else is not_found saying what an id looks like', async (t) => {
  const { err } = createGuards('kvm', 'k');
  const form = uuidIds('libvirt domain');
  t.equal(checkId(err, form, 'domain', 'AAAAAAAA-2222-3333-4444-555555555555'), 'aaaaaaaa-2222-3333-4444-555555555555');
  for (const bad of ['web01', '--all', '11111111-2222-3333-4444-55555555555', ' 11111111-2222-3333-4444-555555555555', '']) {
    const e = await rejection((async () => checkId(err, form, 'domain', bad))());
    t.equal(e.kind, 'not_found', JSON.stringify(bad));
    t.match(e.message, /no domain with id '.*' \(libvirt domain ids are UUIDs\)/);
  }
});

t.test('vSphere managed object ids: their own form, kept as they are; long junk is cut in the message', async (t) => {
  const { err } = createGuards('vmware', 'vc');
  const form = morefIds('VMware VM', 'vm-42');
  t.equal(checkId(err, form, 'VM', 'vm-42'), 'vm-42');
  t.equal(checkId(err, form, 'VM', '17'), '17', 'ESXi: plain numbers');
  const e = await rejection((async () => checkId(err, form, 'VM', `<x>${'y'.repeat(300)}`))());
  t.equal(e.kind, 'not_found');
  t.match(e.message, /\(VMware VM ids are managed object ids such as vm-42\)/);
  t.ok(e.message.length < 250, 'the id is quoted only in part');
  t.throws(() => checkId(err, form, 'VM', 'vm 42'), /no VM with id/);
  t.throws(() => checkId(err, form, 'VM', 'y'.repeat(201)), /no VM with id/, 'at most 200 characters');
});
