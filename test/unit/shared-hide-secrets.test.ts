import t from 'tap';
import { hideSecrets } from '../../providers/shared/hide-secrets.ts';

t.test('every occurrence of every secret is hidden; empty secrets change nothing', async (t) => {
  t.equal(hideSecrets('pw=hunter2 again hunter2', ['hunter2']), 'pw=[redacted] again [redacted]');
  t.equal(hideSecrets('key AAA and pass b', ['AAA', 'b']), 'key [redacted] and pass [redacted]');
  t.equal(hideSecrets('nothing here', ['']), 'nothing here');
  t.equal(hideSecrets('no secrets', []), 'no secrets');
});
