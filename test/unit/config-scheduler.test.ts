/** The `scheduler` config key (issue 13): on with 30 s of jitter by default; whole seconds, 0 to 3600. */
import t from 'tap';
import { ConfigError, resolveConfig } from '../../src/config/load.ts';

const ctx = { env: {}, baseDir: '/etc/snapvisor' };
const minimal = { tokens: [{ name: 'ops', sha256: 'a'.repeat(64), scopes: ['read'] }] };

t.test('scheduler: enabled with 30 s jitter by default', async (t) => {
  t.same(resolveConfig(minimal, 'test', ctx).scheduler, { enabled: true, jitterSec: 30 });
  t.same(resolveConfig({ ...minimal, scheduler: { jitterSec: 0 } }, 'test', ctx).scheduler, { enabled: true, jitterSec: 0 });
  t.same(resolveConfig({ ...minimal, scheduler: { enabled: false } }, 'test', ctx).scheduler, { enabled: false, jitterSec: 30 });
});

t.test('scheduler: bad values are refused by key', async (t) => {
  for (const bad of [{ jitterSec: -1 }, { jitterSec: 1.5 }, { jitterSec: 3601 }, { enabled: 'yes' }, { jitter: 30 }]) {
    const err = t.throws(() => resolveConfig({ ...minimal, scheduler: bad }, 'test', ctx)) as ConfigError;
    t.ok(err.problems.some((p) => p.path.startsWith('/scheduler')), JSON.stringify(bad));
  }
});
