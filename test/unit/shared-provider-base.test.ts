import t from 'tap';
import { EVERY_MODE, providerIdentity } from '../../providers/shared/provider-base.ts';
import { SNAPSHOT_MODES, type Capabilities } from '../../providers/contract.ts';

t.test('EVERY_MODE names every contract mode as supported', async (t) => {
  t.same(Object.keys(EVERY_MODE).sort(), [...SNAPSHOT_MODES].sort());
  t.ok(Object.values(EVERY_MODE).every((m) => m.supported));
});

t.test('providerIdentity: kind, target, and a fresh copy of the capabilities on each call', async (t) => {
  const caps: Capabilities = { modes: EVERY_MODE, revert: true, deleteChildren: true, deleteAll: true, consolidate: false, duplicateNames: true, descriptions: true, readiness: false, limits: { maxNameBytes: 80, nameRules: [] } };
  const id = providerIdentity('vmware', 'vc', caps);
  t.same([id.kind, id.target], ['vmware', 'vc']);
  const one = id.capabilities();
  t.same(one, caps);
  one.modes.memory = { supported: false, reason: 'changed by a caller' };
  one.limits.maxNameBytes = 1;
  t.same(id.capabilities(), caps, 'a caller cannot change the declaration');
  t.same(EVERY_MODE.memory, { supported: true });
});
