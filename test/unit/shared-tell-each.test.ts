import t from 'tap';
import { tellEach } from '../../providers/shared/tell-each.ts';

t.test('every listener is told, in order, even after one throws', async (t) => {
  const heard: string[] = [];
  const thrown: unknown[] = [];
  const boom = new Error('boom');
  const listeners = [
    (a: string, n: number) => heard.push(`1:${a}${n}`),
    () => {
      throw boom;
    },
    (a: string, n: number) => heard.push(`3:${a}${n}`),
  ];
  tellEach(listeners, ['x', 7], (err) => thrown.push(err));
  t.same(heard, ['1:x7', '3:x7']);
  t.same(thrown, [boom]);
});

t.test('a listener that unsubscribes another while told does not cut the round short', async (t) => {
  const heard: string[] = [];
  const set = new Set<() => void>();
  const second = () => heard.push('second');
  set.add(() => {
    heard.push('first');
    set.delete(second);
  });
  set.add(second);
  tellEach(set, [], () => t.fail('nothing throws'));
  t.same(heard, ['first', 'second'], 'this round was fixed when it began');
  heard.length = 0;
  tellEach(set, [], () => t.fail('nothing throws'));
  t.same(heard, ['first'], 'the next round no longer has it');
});
