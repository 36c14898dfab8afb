import t from 'tap';
import type { CreateRateLimit } from '../../providers/contract.ts';
import { budgetKeys, budgetWaitMessage, decideCreateBudget, freeAt, longestWindowMs } from '../../src/domain/create-budget.ts';

const AZURE: CreateRateLimit = { per: 'disk', max: 7, windowMs: 300_000, reason: 'Azure allows 7 incremental snapshots per disk every 5 minutes' };
const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const vm2 = { id: 'vm-a', disks: [{ slot: 'os', path: '/disks/osdisk1' }, { slot: 'lun0', path: '/disks/data1' }] };
const events = (entries: Record<string, number[]>) => new Map(Object.entries(entries));

t.test('keys: per disk by path, slot qualified by the VM, the VM when no disks are known; per vm', async (t) => {
  t.same(budgetKeys(AZURE, vm2), ['disk:/disks/osdisk1', 'disk:/disks/data1']);
  t.same(budgetKeys(AZURE, { id: 'v', disks: [{ slot: 'vda' }, { slot: 'vdb', path: '' }] }), ['disk:v/vda', 'disk:v/vdb'], 'a slot is only unique within its VM');
  t.same(budgetKeys(AZURE, { id: 'v', disks: null }), ['vm:v']);
  t.same(budgetKeys(AZURE, { id: 'v', disks: [] }), ['vm:v']);
  t.same(budgetKeys({ ...AZURE, per: 'vm' }, vm2), ['vm:vm-a']);
  t.same(budgetKeys(AZURE, { id: 'v', disks: [{ slot: 'a', path: '/same' }, { slot: 'b', path: '/same' }] }), ['disk:/same'], 'deduplicated');
});

t.test('sliding window: under max goes, at max waits until the oldest counted event leaves', async (t) => {
  const six = Array.from({ length: 6 }, (_, i) => T0 + i * 1000);
  t.same(decideCreateBudget({ limits: [AZURE], vm: vm2, events: events({ 'disk:/disks/osdisk1': six }), now: T0 + 10_000 }), {
    go: true,
    keys: ['disk:/disks/osdisk1', 'disk:/disks/data1'],
  });
  const seven = [...six, T0 + 6000];
  const d = decideCreateBudget({ limits: [AZURE], vm: vm2, events: events({ 'disk:/disks/osdisk1': seven }), now: T0 + 10_000 });
  t.same(d, { go: false, until: T0 + 300_000, key: 'disk:/disks/osdisk1', limit: AZURE });
  // Nine events (over-counted retries): it fits again once three have left.
  const nine = [...seven, T0 + 7000, T0 + 8000];
  t.equal(freeAt(AZURE, nine, T0 + 10_000), T0 + 2000 + 300_000);
  // Events older than the window do not count.
  t.equal(freeAt(AZURE, [T0 - 400_000, ...six], T0 + 10_000), null);
  t.equal(freeAt(AZURE, [], T0), null);
});

t.test('boundary: an event exactly one window old no longer counts', async (t) => {
  const seven = Array.from({ length: 7 }, () => T0);
  t.equal(freeAt(AZURE, seven, T0 + 299_999), T0 + 300_000, '1 ms before the end: wait');
  t.equal(freeAt(AZURE, seven, T0 + 300_000), null, 'exactly at the end: free');
  const d = decideCreateBudget({ limits: [AZURE], vm: vm2, events: events({ 'disk:/disks/data1': seven }), now: T0 + 300_000 });
  t.equal(d.go, true);
});

t.test('several keys and limits: waits for the one that frees last, records every key once', async (t) => {
  const osFull = Array.from({ length: 7 }, (_, i) => T0 + i);
  const dataFull = Array.from({ length: 7 }, (_, i) => T0 + 60_000 + i);
  const d = decideCreateBudget({ limits: [AZURE], vm: vm2, events: events({ 'disk:/disks/osdisk1': osFull, 'disk:/disks/data1': dataFull }), now: T0 + 100_000 });
  t.match(d, { go: false, until: T0 + 60_000 + 300_000, key: 'disk:/disks/data1' });
  const hourly: CreateRateLimit = { per: 'vm', max: 2, windowMs: 3_600_000, reason: 'two an hour' };
  const vmBusy = decideCreateBudget({ limits: [AZURE, hourly], vm: vm2, events: events({ 'vm:vm-a': [T0, T0 + 1] }), now: T0 + 10 });
  t.match(vmBusy, { go: false, until: T0 + 3_600_000, key: 'vm:vm-a', limit: hourly });
  t.same(decideCreateBudget({ limits: [AZURE, hourly], vm: vm2, events: events({}), now: T0 }), {
    go: true,
    keys: ['disk:/disks/osdisk1', 'disk:/disks/data1', 'vm:vm-a'],
  });
  t.equal(longestWindowMs([AZURE, hourly]), 3_600_000);
  t.equal(longestWindowMs([]), 0);
});

t.test('max 1: one create per window', async (t) => {
  const one: CreateRateLimit = { per: 'vm', max: 1, windowMs: 60_000, reason: 'one a minute' };
  const v = { id: 'v', disks: null };
  t.same(decideCreateBudget({ limits: [one], vm: v, events: events({}), now: T0 }), { go: true, keys: ['vm:v'] });
  t.match(decideCreateBudget({ limits: [one], vm: v, events: events({ 'vm:v': [T0] }), now: T0 + 1 }), { go: false, until: T0 + 60_000 });
  t.match(decideCreateBudget({ limits: [one], vm: v, events: events({ 'vm:v': [T0] }), now: T0 + 60_000 }), { go: true });
});

t.test('a clock that went backwards: events in the future count as now, never a negative or longer-than-window wait', async (t) => {
  const future = Array.from({ length: 7 }, () => T0 + 3_600_000);
  const until = freeAt(AZURE, future, T0);
  t.equal(until, T0 + 300_000, 'one window from now, not from the future event');
  t.ok(until! > T0, 'never in the past');
  const mixed = [T0 - 100_000, T0 - 50_000, ...Array.from({ length: 5 }, () => T0 + 10_000_000)];
  const u2 = freeAt(AZURE, mixed, T0)!;
  t.equal(u2, T0 - 100_000 + 300_000);
  t.ok(u2 - T0 <= AZURE.windowMs && u2 > T0);
});

t.test('the wait message names the reason, the key and when it frees', async (t) => {
  const d = decideCreateBudget({ limits: [AZURE], vm: vm2, events: events({ 'disk:/disks/osdisk1': Array.from({ length: 7 }, () => T0) }), now: T0 });
  if (d.go) return t.fail('expected a wait');
  t.equal(
    budgetWaitMessage(d),
    'waiting for the create budget: Azure allows 7 incremental snapshots per disk every 5 minutes; disk /disks/osdisk1 is free again at 2026-03-01T12:05:00.000Z',
  );
});
