import t from 'tap';
import { Type } from 'typebox';
import { optionProblems } from '../../providers/shared/options.ts';

const Schema = Type.Object(
  {
    host: Type.String(),
    style: Type.Optional(Type.Union([Type.Literal('internal'), Type.Literal('external')])),
    offline: Type.Optional(Type.Object({ forceOff: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
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
  t.same(optionProblems(Schema, { host: 'h', style: 'external', offline: { forceOff: true } }), []);
});
