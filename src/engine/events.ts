/**
 * In-process fan-out of EngineEvent (the API's SSE stream subscribes here).
 *
 * With replicas (store/cluster.ts), events that happened in another replica are emitted here too
 * (engine/cluster-events.ts), through emitRemote: `subscribe` hears every event of the cluster
 * (SSE, waits on a job that runs elsewhere), `subscribeLocal` only those of this process — for what
 * must happen once per event, where the event happened (the webhook outbox, the relay itself).
 * A replica that could not hear the others for a while has missed their events for good (no
 * replay): `missed` tells the listeners that relied on them (SSE, waits) to read the store again.
 */
import type { Logger } from '../../providers/contract.ts';
import { tellEach } from '../../providers/shared/tell-each.ts';
import type { EngineEvent } from './api.ts';

export interface EventBus {
  /** An event of this process: every subscriber hears it. */
  emit(event: EngineEvent): void;
  /** An event another replica published: subscribe() listeners hear it, subscribeLocal() ones do not. */
  emitRemote(event: EngineEvent): void;
  subscribe(listener: (event: EngineEvent) => void): () => void;
  subscribeLocal(listener: (event: EngineEvent) => void): () => void;
  /** Other replicas' events were missed (this replica could not hear for a while): tells onMissed listeners. */
  missed(): void;
  /** Who relies on hearing other replicas' events reads the store again here. Returns the unsubscribe. */
  onMissed(listener: () => void): () => void;
}

export function createEventBus(log: Logger): EventBus {
  // One set in subscription order (as before replicas); the flag marks local-only listeners.
  const listeners = new Map<(event: EngineEvent) => void, { localOnly: boolean }>();
  const deliver = (event: EngineEvent, remote: boolean) => {
    const told = remote ? [...listeners].flatMap(([l, { localOnly }]) => (localOnly ? [] : [l])) : listeners.keys();
    tellEach(told, [event], (err) => log.warn({ err }, 'event listener threw'));
  };
  const add = (listener: (event: EngineEvent) => void, localOnly: boolean) => {
    // A wrapper per subscription: the same function subscribed twice is heard twice, unsubscribed once each.
    const entry = (event: EngineEvent) => listener(event);
    listeners.set(entry, { localOnly });
    return () => void listeners.delete(entry);
  };
  const missedListeners = new Set<() => void>();
  return {
    missed: () => tellEach(missedListeners, [], (err) => log.warn({ err }, 'missed-events listener threw')),
    onMissed(listener) {
      // A wrapper, as for subscribe: one registration, one removal.
      const entry = () => listener();
      missedListeners.add(entry);
      return () => void missedListeners.delete(entry);
    },
    emit: (event) => deliver(event, false),
    emitRemote: (event) => deliver(event, true),
    subscribe: (listener) => add(listener, false),
    subscribeLocal: (listener) => add(listener, true),
  };
}
