/** In-process fan-out of EngineEvent (the API's SSE stream subscribes here). */
import type { Logger } from '../../providers/contract.ts';
import type { EngineEvent } from './api.ts';

export interface EventBus {
  emit(event: EngineEvent): void;
  subscribe(listener: (event: EngineEvent) => void): () => void;
}

export function createEventBus(log: Logger): EventBus {
  const listeners = new Set<(event: EngineEvent) => void>();
  return {
    emit(event) {
      for (const l of [...listeners]) {
        try {
          l(event);
        } catch (err) {
          // A broken subscriber must not break the job that emitted.
          log.warn({ err }, 'event listener threw');
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
