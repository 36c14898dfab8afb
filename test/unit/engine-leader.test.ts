/**
 * The leader's duties (src/engine/leader.ts) follow the cluster's leadership: begun when this
 * replica comes to lead, ended when it stops, in order even when changes come faster than a begin
 * takes; a failed begin is undone and tried again while the lead lasts; stop ends them and gives
 * the lead up. The Leadership here is a hand-driven implementation of the interface.
 */
import t from 'tap';
import { Registry } from 'prom-client';
import type { Leadership } from '../../src/store/cluster.ts';
import { localCluster } from '../../src/store/cluster.ts';
import { createLeaderDuties } from '../../src/engine/leader.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

function handLeadership() {
  let leading = false;
  const listeners = new Set<(v: boolean) => void>();
  const calls: string[] = [];
  const leadership: Leadership = {
    isLeader: () => leading,
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    start: () => void calls.push('start'),
    stop: async () => {
      calls.push('stop');
      if (leading) set(false);
    },
  };
  const set = (v: boolean) => {
    leading = v;
    for (const l of [...listeners]) l(v);
  };
  return { leadership, set, calls };
}

function duties(leadership: Leadership, begin: () => Promise<void> = async () => undefined) {
  const log: string[] = [];
  const registry = new Registry();
  const d = createLeaderDuties({
    leadership,
    log: silentLogger(),
    metrics: registry,
    retryMs: 5,
    begin: async () => {
      log.push('begin');
      await begin();
      log.push('begun');
    },
    end: async () => void log.push('end'),
  });
  return { d, log, registry };
}

const gauge = async (r: Registry) => (await r.getSingleMetric('snapvisor_cluster_leader')!.get()).values[0]?.value;

t.test('a local cluster leads at once: the duties begin at start, end at stop', async (t) => {
  const { d, log, registry } = duties(localCluster().leadership);
  await d.start();
  t.same(log, ['begin', 'begun']);
  t.equal(await gauge(registry), 1);
  await d.stop();
  t.same(log, ['begin', 'begun', 'end']);
});

t.test('duties follow the lead as it comes and goes, in order, even while a begin is under way', async (t) => {
  const hand = handLeadership();
  let release!: () => void;
  let hold = new Promise<void>((r) => (release = r));
  const { d, log, registry } = duties(hand.leadership, () => hold);
  await d.start();
  t.same(log, [], 'a follower does nothing');
  t.equal(await gauge(registry), 0);
  hand.set(true);
  t.equal(await gauge(registry), 1);
  hand.set(false);
  hand.set(true);
  release();
  hold = Promise.resolve();
  // Wait until the chain of changes has been applied: a stop queues behind it.
  hand.set(false);
  await d.stop();
  t.same(log, ['begin', 'begun', 'end'], 'begun, then ended after the begin finished (the flaps in between collapse)');
  t.same(hand.calls, ['start', 'stop']);
  const changes = (await registry.getSingleMetric('snapvisor_cluster_leadership_changes_total')!.get()).values[0]?.value;
  t.equal(changes, 4);
});

t.test('a failed begin is undone and tried again while the lead lasts', async (t) => {
  const hand = handLeadership();
  let failures = 2;
  let succeeded!: () => void;
  const begun = new Promise<void>((resolve) => (succeeded = resolve));
  const { d, log } = duties(hand.leadership, async () => {
    if (failures-- > 0) throw new Error('database away');
    succeeded();
  });
  await d.start();
  // The retry timer is unref'd (a daemon lives by its server): hold the process meanwhile.
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(keepAlive));
  hand.set(true);
  await begun;
  await d.stop();
  t.same(log, ['begin', 'end', 'begin', 'end', 'begin', 'begun', 'end']);
  t.equal(log.at(-1), 'end');
});
