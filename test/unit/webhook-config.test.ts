/** The webhooks configuration (secret length, names, URL) and what an answer means for a delivery. */
import t from 'tap';
import { ConfigError, resolveConfig } from '../../src/config/load.ts';
import { classifyAnswer } from '../../src/domain/webhook.ts';

const minimal = { tokens: [{ name: 'ops', sha256: 'a'.repeat(64), scopes: ['read'] }] };
const ctx = (env: NodeJS.ProcessEnv = {}) => ({ env, baseDir: '/tmp' });
const SECRET = 'a-webhook-secret-of-28-chars';
const hook = (over: Record<string, unknown> = {}) => ({ name: 'ops', url: 'https://hooks.example/in', secret: 'env:HOOK_SECRET', events: ['job.failed'], ...over });

const problems = (raw: unknown, env: NodeJS.ProcessEnv = { HOOK_SECRET: SECRET }) => {
  try {
    resolveConfig(raw, 'test', ctx(env));
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  return null;
};

t.test('a webhook resolves its secret and defaults giveUpAfterDays', async (t) => {
  const c = resolveConfig({ ...minimal, webhooks: [hook()] }, 'test', ctx({ HOOK_SECRET: SECRET }));
  t.same(c.webhooks, [{ name: 'ops', url: 'https://hooks.example/in', secret: SECRET, events: ['job.failed'], giveUpAfterDays: 3 }]);
  t.same(resolveConfig(minimal, 'test', ctx()).webhooks, [], 'none by default');
});

t.test('a short secret is refused without showing it', async (t) => {
  const e = problems({ ...minimal, webhooks: [hook()] }, { HOOK_SECRET: 'short-secret' });
  t.ok(e);
  t.match(e!.message, /\/webhooks\/0\/secret: the secret of webhook 'ops' is 12 characters long; at least 24/);
  t.notMatch(e!.message, /short-secret/);
});

t.test('bad webhook entries name the key', async (t) => {
  t.match(problems({ ...minimal, webhooks: [hook(), hook()] })?.message, /\/webhooks\/1\/name: duplicate webhook name 'ops'/);
  t.match(problems({ ...minimal, webhooks: [hook({ url: 'ftp://x' })] })?.message, /\/webhooks\/0\/url/);
  t.match(problems({ ...minimal, webhooks: [hook({ events: ['job.done'] })] })?.message, /\/webhooks\/0\/events\/0/);
  t.match(problems({ ...minimal, webhooks: [hook({ events: [] })] })?.message, /\/webhooks\/0\/events/);
  t.match(problems({ ...minimal, webhooks: [hook({ extra: 1 })] })?.message, /unknown key\(s\): extra/);
});

t.test('answers: 2xx delivered, 408/429/5xx retried, anything else given up', async (t) => {
  t.same([200, 202, 204, 299].map(classifyAnswer), ['delivered', 'delivered', 'delivered', 'delivered']);
  t.same([408, 429, 500, 502, 503, 504].map(classifyAnswer), ['retry', 'retry', 'retry', 'retry', 'retry', 'retry']);
  t.same([301, 302, 400, 401, 403, 404, 410, 413, 422].map(classifyAnswer), Array(9).fill('give-up'));
});
