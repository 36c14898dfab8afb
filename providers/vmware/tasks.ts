/**
 * Waiting for a vSphere task by polling `RetrievePropertiesEx(Task, ['info'])` with backoff
 * (25 ms doubling to 1 s) and a deadline — vcsim can leave a task `running` forever after a panic.
 * `info.progress` flows into ctx.progress (scaled into the caller's band); `state: error` becomes the
 * task's fault (VimFault, mapped like a SOAP fault). On abort the task is cancelled (best effort) and
 * the wait ends with a transient 'cancelled' error whose retry is `uncertain`: the task may still finish.
 */
import { ProviderError, type CallContext } from '../contract.ts';
import type { VimClient } from './client.ts';
import { toProviderError, vimFaultFromTaskError, type CallInfo } from './faults.ts';
import { PROVIDER } from './options.ts';
import { objectProps, parseTaskInfo, type MoRef } from './parse.ts';

const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 1000;

export interface WaitOptions {
  call: CallInfo;
  timeoutMs: number;
  /** The part of the job's 0..100 this task covers (default the whole). */
  band?: [number, number];
}

/** Resolves with `info.result` (normalised) when the task succeeds. */
export async function waitForTask(client: VimClient, task: MoRef, ctx: CallContext, options: WaitOptions): Promise<unknown> {
  const deadline = Date.now() + options.timeoutMs;
  const [lo, hi] = options.band ?? [0, 100];
  let delay = FIRST_POLL_MS;
  let lastProgress = -1;
  for (;;) {
    if (ctx.signal.aborted) return cancelled(client, task, ctx, options.call);
    let info;
    try {
      const [content] = await client.retrieve({ propSet: [{ type: 'Task', pathSet: ['info'] }], objectSet: [{ obj: task }] }, { signal: ctx.signal });
      info = parseTaskInfo(objectProps(content).props.get('info'));
    } catch (e) {
      if (ctx.signal.aborted) return cancelled(client, task, ctx, options.call);
      // We lost sight of a task that may complete: whatever the cause, the outcome is unknown.
      throw toProviderError(e, { ...options.call, what: `${options.call.what}: waiting for task ${task.value}`, outcomeUnknown: true });
    }
    if (info.state === 'success') {
      ctx.progress(hi);
      return info.result;
    }
    if (info.state === 'error') throw toProviderError(vimFaultFromTaskError(info.error), options.call);
    if (info.progress !== null && info.progress !== lastProgress) {
      lastProgress = info.progress;
      ctx.progress(Math.round(lo + ((hi - lo) * info.progress) / 100));
    }
    if (Date.now() >= deadline) {
      throw new ProviderError(PROVIDER, 'transient', `${options.call.what}: task ${task.value} still ${info.state} after ${Math.round(options.timeoutMs / 1000)} s`, {
        retry: 'uncertain',
      });
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())), ctx.signal);
    delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}

async function cancelled(client: VimClient, task: MoRef, ctx: CallContext, call: CallInfo): Promise<never> {
  try {
    await client.cancelTask(task, { signal: AbortSignal.timeout(5000) });
  } catch (e) {
    // Not cancelable, or already finished: the error below says the outcome is unknown either way.
    ctx.log.debug({ task: task.value, err: e instanceof Error ? e.message : String(e) }, 'CancelTask failed (ignored)');
  }
  throw new ProviderError(PROVIDER, 'transient', `${call.what}: cancelled while task ${task.value} was running (it may still complete)`, { retry: 'uncertain' });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
