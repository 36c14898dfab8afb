/**
 * Events and policy changes across replicas (store/cluster.ts): every event that happens in this
 * process is published to the other replicas, and what they publish is emitted here as a remote
 * event (EventBus.emitRemote: SSE and the waits on jobs hear it; the webhook outbox and the
 * snapshot groups' refresh, which must act once per event, do not). Never re-published.
 *
 * - NOTIFY carries less than 8000 bytes: a bigger event (a job with a long error, a VM with many
 *   disks) is sent as a reference — its kind and id — and the receivers read the row from the store
 *   (they may then see a state a little newer than the event's: the store's present one).
 * - Received messages are handled one after the other, so a reference read from the store does not
 *   let a later event of the same job overtake it.
 * - Policy changes: the policy id on CHANNEL_POLICIES; receivers read it again (Policies.reload),
 *   which refreshes the leader's scheduler.
 * - While this replica cannot hear (its listening connection is down) the others' events are lost:
 *   when it hears again, EventBus.missed() makes SSE streams end (their clients come back and read
 *   again) and waits on jobs read the store.
 * A local (SQLite) cluster has nobody to tell: nothing is subscribed, no event is serialized.
 */
import type { Logger } from '../../providers/contract.ts';
import type { Cluster, Store } from '../store/index.ts';
import { PayloadTooLargeError } from '../store/cluster.ts';
import type { EngineEvent, TargetView } from './api.ts';
import type { EventBus } from './events.ts';
import { errSummary } from './sync.ts';

export const CHANNEL_EVENTS = 'snapvisor_events';
export const CHANNEL_POLICIES = 'snapvisor_policies';

/** What goes on the wire: the event, or where to read it. */
export type EventMessage =
  | { event: EngineEvent }
  | { ref: { type: 'job' | 'policy-run'; id: string } }
  | { ref: { type: 'snapshot' | 'vm'; id: string; action: 'created' | 'updated' | 'gone' } }
  | { ref: { type: 'target'; name: string } };

export interface ClusterEventsOptions {
  cluster: Cluster;
  store: Store;
  events: EventBus;
  log: Logger;
  /** A target as the API shows it (re-read for a target event sent by reference). */
  targetView(name: string): Promise<TargetView>;
  /** A policy changed in another replica. */
  policyChanged(policyId: string): Promise<void>;
}

export interface ClusterEvents {
  /** Tell the other replicas that a policy changed here. */
  publishPolicyChange(policyId: string): void;
  close(): void;
}

/** The reference a too-big event is sent as (drift events are small: a summary of counts). */
export function referenceOf(event: EngineEvent): EventMessage | null {
  switch (event.type) {
    case 'job':
      return { ref: { type: 'job', id: event.job.id } };
    case 'policy-run':
      return { ref: { type: 'policy-run', id: event.run.id } };
    case 'snapshot':
      return { ref: { type: 'snapshot', id: event.snapshot.id, action: event.action } };
    case 'vm':
      return { ref: { type: 'vm', id: event.vm.id, action: event.action } };
    case 'target':
      return { ref: { type: 'target', name: event.target.name } };
    case 'drift':
      return null;
  }
}

export function createClusterEvents(options: ClusterEventsOptions): ClusterEvents {
  const { cluster, store, events, log } = options;
  if (!cluster.shared) return { publishPolicyChange: () => undefined, close: () => undefined };

  /** Logged once per failure streak (a database outage would log every event otherwise). */
  let failing = false;
  const send = (channel: string, payload: string, what: object) =>
    cluster.publish(channel, payload).then(
      () => {
        if (failing) log.info({}, 'cluster: publishing to the other replicas works again');
        failing = false;
      },
      (err: unknown) => {
        if (!failing) log.warn({ ...what, err: errSummary(err) }, 'cluster: could not tell the other replicas (they miss this and what follows until it works again)');
        failing = true;
      },
    );

  const publish = (event: EngineEvent) => {
    const whole = JSON.stringify({ event } satisfies EventMessage);
    if (Buffer.byteLength(whole) <= cluster.maxPayloadBytes) {
      void send(CHANNEL_EVENTS, whole, { event: event.type });
      return;
    }
    const ref = referenceOf(event);
    if (ref === null) {
      log.warn({ event: event.type, err: errSummary(new PayloadTooLargeError(Buffer.byteLength(whole), cluster.maxPayloadBytes)) }, 'cluster: event too big to publish');
      return;
    }
    void send(CHANNEL_EVENTS, JSON.stringify(ref), { event: event.type });
  };

  const resolve = async (message: EventMessage): Promise<EngineEvent | null> => {
    if ('event' in message) return message.event;
    const { ref } = message;
    switch (ref.type) {
      case 'job': {
        const job = await store.jobs.get(ref.id);
        return job && { type: 'job', job };
      }
      case 'policy-run': {
        const run = await store.policies.getRun(ref.id);
        return run && { type: 'policy-run', run };
      }
      case 'snapshot': {
        const snapshot = await store.snapshots.get(ref.id);
        return snapshot && { type: 'snapshot', action: ref.action, snapshot };
      }
      case 'vm': {
        const vm = await store.vms.get(ref.id);
        return vm && { type: 'vm', action: ref.action, vm };
      }
      case 'target':
        return { type: 'target', target: await options.targetView(ref.name) };
    }
  };

  let received = Promise.resolve();
  const offEvents = cluster.listen(CHANNEL_EVENTS, (payload) => {
    received = received
      .then(async () => {
        const event = await resolve(JSON.parse(payload) as EventMessage);
        if (event) events.emitRemote(event);
      })
      .catch((err: unknown) => log.warn({ err: errSummary(err) }, 'cluster: an event from another replica could not be read'));
  });
  const offPolicies = cluster.listen(CHANNEL_POLICIES, (policyId) => {
    received = received
      .then(() => options.policyChanged(policyId))
      .catch((err: unknown) => log.warn({ policyId, err: errSummary(err) }, 'cluster: a policy changed in another replica could not be read'));
  });
  const offLocal = events.subscribeLocal(publish);
  const offResume = cluster.onResume(() => {
    log.info({}, 'cluster: hearing the other replicas again; what they published meanwhile is read from the store');
    events.missed();
  });

  return {
    publishPolicyChange(policyId) {
      void send(CHANNEL_POLICIES, policyId, { policyId });
    },
    close() {
      offLocal();
      offEvents();
      offPolicies();
      offResume();
    },
  };
}
