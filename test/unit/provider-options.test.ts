import t from 'tap';
import { Type } from 'typebox';
import { ProviderError } from '../../providers/contract.ts';
import { optionProblems, validOptions } from '../../providers/shared/options.ts';

const Schema = Type.Object(
  {
    host: Type.String(),
    style: Type.Optional(Type.Union([Type.Literal('internal'), Type.Literal('external')])),
    offline: Type.Optional(Type.Object({ forcePowerOff: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
    password: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

t.test('every problem names its key; values are never echoed', async (t) => {
  const problems = optionProblems(Schema, { style: 'weird', offline: { forceOf: true }, bogus: 'hunter2' });
  t.same(problems.sort(), [
    "missing option 'host'",
    "option 'style' must be one of \"internal\", \"external\"",
    "unknown option 'bogus'",
    "unknown option 'offline.forceOf'",
  ]);
  t.notMatch(problems.join(' '), /hunter2|weird/);
  const typed = optionProblems(Schema, { host: 'h', password: 42 });
  t.same(typed, ["option 'password' must be string"]);
  t.notMatch(typed.join(' '), /42/);
});

t.test('a valid object has no problems', async (t) => {
  t.same(optionProblems(Schema, { host: 'h', style: 'external', offline: { forcePowerOff: true } }), []);
});

t.test('a renamed key is named with its new name instead of "unknown"', async (t) => {
  const renamed = { 'offline.forceOff': 'offline.forcePowerOff' };
  const Offline = Type.Object({ offline: Type.Optional(Type.Object({ forcePowerOff: Type.Optional(Type.Boolean()) }, { additionalProperties: false })) }, { additionalProperties: false });
  t.same(optionProblems(Offline, { offline: { forceOff: true } }, renamed), ['offline.forceOff was renamed to offline.forcePowerOff']);
  t.same(optionProblems(Offline, { offline: { forceOf: true } }, renamed), ["unknown option 'offline.forceOf'"], 'other unknown keys as before');
  t.same(optionProblems(Offline, { offline: { forcePowerOff: true } }, renamed), []);
});

t.test('validOptions: the schema first, then the extra checks; invalid names the provider and the target', async (t) => {
  const Small = Type.Object({ port: Type.Optional(Type.Number()) }, { additionalProperties: false });
  const more = (o: { port?: number }) => (o.port === 22 ? ["option 'port' must not be 22"] : []);
  t.same(validOptions('kvm', 'lab', Small, undefined, more), {}, 'absent options are an empty object');
  t.same(validOptions('kvm', 'lab', Small, { port: 1 }, more), { port: 1 });
  for (const [input, problem] of [[{ port: 22 }, "option 'port' must not be 22"], [{ port: 'x', z: 1 }, "unknown option 'z'"]] as const) {
    let caught: unknown;
    try {
      validOptions('kvm', 'lab', Small, input, more);
    } catch (e) {
      caught = e;
    }
    t.ok(caught instanceof ProviderError);
    t.match(caught, { kind: 'invalid', provider: 'kvm' });
    t.match((caught as Error).message, `target 'lab': `);
    t.match((caught as Error).message, problem);
  }
});
