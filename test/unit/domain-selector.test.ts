/**
 * Selectors (src/domain/selector.ts): AND across fields, OR inside a list, an empty selector
 * matches nothing, picomatch globs over the VM name, and the glob validator.
 */
import fc from 'fast-check';
import t from 'tap';
import type { Selector } from '../../src/domain/policy.ts';
import { isEmptySelector, namePatternProblem, selectorMatcher, type SelectableVm } from '../../src/domain/selector.ts';

const vm = (id: string, name: string, targetName: string): SelectableVm => ({ id, name, targetName });
const VMS = [vm('1', 'web-1', 'lab'), vm('2', 'web-2', 'prod'), vm('3', 'db-1', 'prod'), vm('4', '.hidden', 'lab'), vm('5', 'Web-3', 'lab')];
const pick = (selector: Selector) => VMS.filter(selectorMatcher(selector)).map((v) => v.id);

t.test('an empty selector matches nothing, never everything', async (t) => {
  t.ok(isEmptySelector({}));
  t.same(pick({}), []);
  t.notOk(isEmptySelector({ vms: [] }));
  t.same(pick({ vms: [] }), []);
  t.same(pick({ targets: [] }), []);
});

t.test('fields AND together; entries of a list OR', async (t) => {
  t.same(pick({ vms: ['1', '3', 'nope'] }), ['1', '3']);
  t.same(pick({ targets: ['prod'] }), ['2', '3']);
  t.same(pick({ targets: ['prod', 'lab'] }), ['1', '2', '3', '4', '5']);
  t.same(pick({ targets: ['prod'], namePattern: 'web-*' }), ['2']);
  t.same(pick({ vms: ['1', '2'], targets: ['lab'] }), ['1']);
  t.same(pick({ vms: ['3'], targets: ['prod'], namePattern: 'web-*' }), []);
});

t.test('name globs: picomatch syntax, case-sensitive, a leading dot is an ordinary name', async (t) => {
  t.same(pick({ namePattern: 'web-*' }), ['1', '2']);
  t.same(pick({ namePattern: '{web,db}-1' }), ['1', '3']);
  t.same(pick({ namePattern: 'web-[2-9]' }), ['2']);
  t.same(pick({ namePattern: '?eb-?' }), ['1', '2', '5']);
  t.same(pick({ namePattern: '*' }), ['1', '2', '3', '4', '5']);
  t.same(pick({ namePattern: 'web-1' }), ['1']);
});

t.test('namePatternProblem', async (t) => {
  t.equal(namePatternProblem('web-*'), null);
  t.equal(namePatternProblem('{a,b}-[0-9]'), null);
  t.match(namePatternProblem(''), /empty/);
});

t.test('property: a selector matches exactly the VMs satisfying every field it gives', async (t) => {
  const ids = ['a', 'b', 'c', 'd'];
  const targets = ['t1', 't2', 't3'];
  const vmArb = fc.record({ id: fc.constantFrom(...ids), name: fc.constantFrom('web-1', 'web-2', 'db-1', 'x'), targetName: fc.constantFrom(...targets) });
  const selArb = fc.record(
    { vms: fc.subarray(ids), targets: fc.subarray(targets), namePattern: fc.constantFrom('web-*', 'db-1', '*', 'x') },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fc.array(vmArb, { maxLength: 12 }), selArb, (vms, selector) => {
      const match = selectorMatcher(selector);
      const glob = (p: string, name: string) => (p === '*' ? true : p === 'web-*' ? name.startsWith('web-') : name === p);
      return vms.every((v) => {
        const want =
          !isEmptySelector(selector) &&
          (selector.vms === undefined || selector.vms.includes(v.id)) &&
          (selector.targets === undefined || selector.targets.includes(v.targetName)) &&
          (selector.namePattern === undefined || glob(selector.namePattern, v.name));
        return match(v) === want;
      });
    }),
    { numRuns: 500 },
  );
});
