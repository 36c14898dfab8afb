import t from 'tap';
import { buildForest, descendantIds, type TreeInput } from '../../src/domain/tree.ts';

const row = (id: string, parentId: string | null, current = false): TreeInput => ({ id, parentId, current });
const shape = (nodes: Array<{ id: string; depth: number; children: unknown[] }>): unknown =>
  nodes.map((n) => [n.id, n.depth, shape(n.children as typeof nodes)]);

t.test('chain with a branch: shape, depths, current', async (t) => {
  const f = buildForest([row('a', null), row('b', 'a'), row('c', 'b'), row('d', 'a', true)]);
  t.same(shape(f.roots), [['a', 1, [['b', 2, [['c', 3, []]]], ['d', 2, []]]]]);
  t.equal(f.currentId, 'd');
  t.equal(f.currentDepth, 2);
  t.equal(f.maxDepth, 3);
});

t.test('children keep input order; several roots are allowed', async (t) => {
  const f = buildForest([row('r2', null), row('r1', null), row('x', 'r1'), row('w', 'r1')]);
  t.same(shape(f.roots), [['r2', 1, []], ['r1', 1, [['x', 2, []], ['w', 2, []]]]]);
});

t.test('a parent that is not in the input makes the row a root, never drops it', async (t) => {
  const f = buildForest([row('b', 'gone'), row('c', 'b', true)]);
  t.same(shape(f.roots), [['b', 1, [['c', 2, []]]]]);
  t.equal(f.currentDepth, 2);
});

t.test('corrupt data: cycles and self-parents still yield every node exactly once', async (t) => {
  const f = buildForest([row('a', 'c'), row('b', 'a'), row('c', 'b'), row('s', 's'), row('ok', null)]);
  const seen: string[] = [];
  const visit = (nodes: Array<{ id: string; children: unknown[] }>) => nodes.forEach((n) => (seen.push(n.id), visit(n.children as typeof nodes)));
  visit(f.roots);
  t.same(seen.sort(), ['a', 'b', 'c', 'ok', 's']);
  t.ok(f.maxDepth >= 3, 'the cycle is cut into a chain');
});

t.test('empty input', async (t) => {
  t.same(buildForest([]), { roots: [], currentId: null, maxDepth: 0, currentDepth: 0 });
});

t.test('deep chains are linear, not quadratic', async (t) => {
  const rows = Array.from({ length: 20_000 }, (_, i) => row(`n${i}`, i === 0 ? null : `n${i - 1}`, i === 19_999));
  const f = buildForest(rows);
  t.equal(f.maxDepth, 20_000);
  t.equal(f.currentDepth, 20_000);
});

t.test('descendantIds: whole subtree, parents before children, cycle-safe', async (t) => {
  const rows = [row('a', null), row('b', 'a'), row('c', 'b'), row('d', 'a'), row('e', 'x')];
  t.same(descendantIds(rows, 'a'), ['b', 'd', 'c']);
  t.same(descendantIds(rows, 'c'), []);
  t.same(descendantIds([row('p', 'q'), row('q', 'p')], 'p'), ['q']);
});
