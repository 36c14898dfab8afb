/**
 * Waiting for a vSphere task by polling `RetrievePropertiesEx(Task, ['info'])` with backoff
 * (25 ms doubling to 1 s) and a deadline — vcsim can leave a task `running` forever after a panic.
 * `info.progress` flows into ctx.progress (scaled into the caller's band); `state: error` becomes the
 * task's fault (VimFault, mapped like a SOAP fault). On abort the task is cancelled (best effort) and
 * the wait ends with a transient 'cancelled' error whose retry is `uncertain`: the task may still finish.
 *
 * The first poll follows the *_Task call at once (vcsim and short vCenter tasks are done by then).
 * `alongside` reads properties of another object in the same RetrievePropertiesEx as the task's
 * info, so a caller that needs the object's state after the task (createSnapshot: the VM's tree)
 * does not pay another round trip — vCenter may update the two at different moments, so what comes
 * back alongside is a hint for the caller to verify, not a guarantee.
 */
import { ProviderError, type CallContext } from '../contract.ts';
import type { VimClient } from './client.ts';
import { toProviderError, vimFaultFromTaskError, type CallInfo } from './faults.ts';
import { PROVIDER } from './options.ts';
import { objectProps, parseTaskInfo, type MoRef } from './parse.ts';
import { sleep } from '../shared/sleep.ts';

const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 1000;

export interface WaitOptions {
  call: CallInfo;
  timeoutMs: number;
  /** The part of the job's 0..100 this task covers (default the whole). */
  band?: [number, number];
  /** Properties of another object to read in every poll (see the header). */
  alongside?: { obj: MoRef; paths: string[] };
}

export interface TaskOutcome {
  /** `info.result`, normalised. */
  result: unknown;
  /** The `alongside` object's properties from the poll that saw success; null when not asked or not returned. */
  alongside: Map<string, unknown> | null;
}

/** Resolves with `info.result` (normalised) when the task succeeds. */
export async function waitForTask(client: VimClient, task: MoRef, ctx: CallContext, options: WaitOptions): Promise<unknown> {
  return (await waitForTaskOutcome(client, task, ctx, options)).result;
}

/** waitForTask, also handing back what `options.alongside` asked for. */
export async function waitForTaskOutcome(client: VimClient, task: MoRef, ctx: CallContext, options: WaitOptions): Promise<TaskOutcome> {
  const deadline = Date.now() + options.timeoutMs;
  const [lo, hi] = options.band ?? [0, 100];
  const other = options.alongside;
  const spec = {
    propSet: [{ type: 'Task', pathSet: ['info'] }, ...(other ? [{ type: other.obj.type, pathSet: other.paths }] : [])],
    objectSet: [{ obj: task }, ...(other ? [{ obj: other.obj }] : [])],
  };
  let delay = FIRST_POLL_MS;
  let lastProgress = -1;
  for (;;) {
    if (ctx.signal.aborted) return cancelled(client, task, ctx, options.call);
    let info;
    let alongside: Map<string, unknown> | null = null;
    try {
      const contents = (await client.retrieve(spec, { signal: ctx.signal })).map(objectProps);
      const own = contents.find((c) => c.obj?.value === task.value && c.obj.type === task.type) ?? (other ? undefined : contents[0]);
      info = parseTaskInfo(own?.props.get('info'));
      if (other) alongside = contents.find((c) => c.obj?.value === other.obj.value && c.obj.type === other.obj.type)?.props ?? null;
    } catch (e) {
      if (ctx.signal.aborted) return cancelled(client, task, ctx, options.call);
      // We lost sight of a task that may complete: whatever the cause, the outcome is unknown.
      throw toProviderError(e, { ...options.call, what: `${options.call.what}: waiting for task ${task.value}`, outcomeUnknown: true });
    }
    if (info.state === 'success') {
      ctx.progress(hi);
      return { result: info.result, alongside };
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
