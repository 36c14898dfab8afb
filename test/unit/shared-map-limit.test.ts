import t from 'tap';
import { mapLimit } from '../../providers/shared/map-limit.ts';

const tick = () => new Promise<void>((r) => setImmediate(r));

t.test('keeps the order, never more than `limit` at once', async (t) => {
  let running = 0;
  let most = 0;
  const out = await mapLimit([5, 1, 4, 2, 3, 0, 6], 3, async (n, i) => {
    running++;
    most = Math.max(most, running);
    for (let k = 0; k < n; k++) await tick();
    running--;
    return `${i}:${n * 10}`;
  });
  t.same(out, ['0:50', '1:10', '2:40', '3:20', '4:30', '5:0', '6:60']);
  t.equal(most, 3);
});

t.test('empty input, limit above the length', async (t) => {
  t.same(await mapLimit([], 4, async () => 1), []);
  t.same(await mapLimit([1, 2], 10, async (n) => n + 1), [2, 3]);
});

t.test('a failure rejects with the first error and starts no new call', async (t) => {
  const started: number[] = [];
  await t.rejects(
    mapLimit([0, 1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n);
      await tick();
      if (n === 1) throw new Error('boom 1');
      await tick();
      return n;
    }),
    /boom 1/,
  );
  await tick();
  await tick();
  t.ok(started.length < 6, `stopped starting new calls (started ${started.join(',')})`);
});

t.test('a limit below 1 is a bug, not an endless wait', async (t) => {
  await t.rejects(mapLimit([1], 0, async (n) => n), RangeError);
});
