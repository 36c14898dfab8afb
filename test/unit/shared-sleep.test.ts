import t from 'tap';
import { sleep } from '../../providers/shared/sleep.ts';

t.test('an abort ends the wait at once: rejects with the caller\'s error, or resolves early without one', async (t) => {
  const c1 = new AbortController();
  const started = Date.now();
  const waiting = sleep(60_000, c1.signal, () => new Error('stopped waiting for the guest'));
  c1.abort();
  await t.rejects(waiting, /stopped waiting for the guest/);
  const c2 = new AbortController();
  const quiet = sleep(60_000, c2.signal);
  c2.abort();
  await quiet;
  t.ok(Date.now() - started < 30_000, 'neither sat out its 60 s');
  await t.rejects(sleep(10, AbortSignal.abort(), () => new Error('already')), /already/, 'already aborted: at once');
  await t.resolves(sleep(5, new AbortController().signal), 'not aborted: resolves after the time');
});
