import fc from 'fast-check';
import t from 'tap';
import { groupState, retryable, startSpreadMs } from '../../src/domain/group-state.ts';
import { JOB_STATES, type JobState } from '../../src/domain/types.ts';

const of = (...states: JobState[]) => states.map((state) => ({ state }));

t.test('group state from its members', async (t) => {
  t.equal(groupState(of('succeeded', 'succeeded')), 'succeeded');
  t.equal(groupState(of('succeeded', 'failed')), 'partial', 'some made, some failed: partial');
  t.equal(groupState(of('succeeded', 'cancelled')), 'partial');
  t.equal(groupState(of('failed', 'failed')), 'failed');
  t.equal(groupState(of('failed', 'cancelled')), 'failed', 'none made, not all cancelled: failed');
  t.equal(groupState(of('cancelled', 'cancelled')), 'cancelled');
  t.equal(groupState(of('succeeded', 'running', 'failed')), 'running', 'a member still running keeps it running');
  t.equal(groupState(of('queued')), 'running');
  t.equal(groupState(of('succeeded', 'failed'), true), 'deleted', 'deleted wins');
  t.equal(groupState([]), 'failed', 'an empty group made nothing');
});

t.test('invariants over any members', async (t) => {
  const member = fc.constantFrom(...JOB_STATES).map((state) => ({ state }));
  fc.assert(
    fc.property(fc.array(member, { minLength: 1, maxLength: 30 }), (members) => {
      const state = groupState(members);
      const open = members.some((m) => m.state === 'queued' || m.state === 'running');
      const made = members.filter((m) => m.state === 'succeeded').length;
      if (open) return state === 'running';
      if (state === 'succeeded') return made === members.length;
      if (state === 'partial') return made > 0 && made < members.length && retryable(members).length === members.length - made;
      return made === 0 && retryable(members).length === members.length;
    }),
  );
  t.pass('running iff a job is open; succeeded iff all made; partial iff some; otherwise all are retryable');
});

t.test('start spread: last start − first start over the members that started', async (t) => {
  t.equal(startSpreadMs([null, null]), null, 'none started');
  t.equal(startSpreadMs(['2026-12-04T10:00:00.000Z']), 0);
  t.equal(startSpreadMs(['2026-12-04T10:00:01.500Z', null, '2026-12-04T10:00:00.000Z', '2026-12-04T10:00:00.700Z']), 1500);
});
