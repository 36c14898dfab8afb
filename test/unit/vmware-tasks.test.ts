/**
 * providers/vmware/tasks.ts: the task wait loop, against a scripted VimClient (vcsim finishes every
 * task inside the call, so running tasks, progress, cancellation and deadlines cannot be seen there).
 * TaskInfo shapes as node-soap returns them (see vmware-parse.test.ts).
 */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import type { VimClient } from '../../providers/vmware/client.ts';
import { waitForTask, waitForTaskOutcome } from '../../providers/vmware/tasks.ts';

const task = { type: 'Task', value: 'task-9' };
const call = { what: "target 'vc': create snapshot of VM vm-1", mutating: true };

function infoContent(info: Record<string, unknown>) {
  return { obj: { attributes: { type: 'Task' }, $value: 'task-9' }, propSet: { name: 'info', val: { attributes: { 'xsi:type': 'TaskInfo' }, ...info } } };
}

/** A VimClient whose task reads return `infos` one after the other (the last one repeats). */
function scripted(infos: Array<Record<string, unknown>>, onRead?: (n: number) => void) {
  let reads = 0;
  const cancelled: string[] = [];
  const client = {
    async retrieve() {
      onRead?.(reads);
      const info = infos[Math.min(reads, infos.length - 1)] ?? {};
      reads++;
      return [infoContent(info)];
    },
    async cancelTask(ref: { value: string }) {
      cancelled.push(ref.value);
    },
  } as unknown as VimClient;
  return { client, cancelled, reads: () => reads };
}

t.test('running with progress → success: progress reported, result returned', async (t) => {
  const { client } = scripted([
    { state: 'queued', cancelable: true },
    { state: 'running', progress: 10 },
    { state: 'running', progress: 60 },
    { state: 'success', result: { attributes: { 'xsi:type': 'ManagedObjectReference', type: 'VirtualMachineSnapshot' }, $value: 'snapshot-3' } },
  ]);
  const progress: number[] = [];
  const result = await waitForTask(client, task, testContext(undefined, (p) => progress.push(p)), { call, timeoutMs: 10_000 });
  t.same(result, { type: 'VirtualMachineSnapshot', value: 'snapshot-3' });
  t.same(progress, [10, 60, 100]);
});

t.test('progress is scaled into the caller band', async (t) => {
  const { client } = scripted([{ state: 'running', progress: 50 }, { state: 'success' }]);
  const progress: number[] = [];
  await waitForTask(client, task, testContext(undefined, (p) => progress.push(p)), { call, timeoutMs: 10_000, band: [20, 90] });
  t.same(progress, [55, 90]);
});

t.test('state error → the task fault, mapped', async (t) => {
  const { client } = scripted([{ state: 'error', error: { fault: { attributes: { 'xsi:type': 'TaskInProgress' } }, localizedMessage: 'Another task is already in progress.' } }]);
  const e = await waitForTask(client, task, testContext(), { call, timeoutMs: 10_000 }).catch((x: unknown) => x);
  t.ok(e instanceof ProviderError);
  t.equal((e as ProviderError).kind, 'conflict');
  t.equal((e as ProviderError).nativeCode, 'TaskInProgress');
  t.match((e as ProviderError).message, /Another task is already in progress/);
});

t.test('abort while running → CancelTask, transient error with retry uncertain', async (t) => {
  const ac = new AbortController();
  const { client, cancelled } = scripted([{ state: 'running', progress: 5, cancelable: true }], (n) => {
    if (n === 2) ac.abort();
  });
  const e = await waitForTask(client, task, testContext(ac.signal), { call, timeoutMs: 10_000 }).catch((x: unknown) => x);
  t.ok(e instanceof ProviderError);
  t.equal((e as ProviderError).kind, 'transient');
  t.equal((e as ProviderError).retry, 'uncertain', 'the task may still finish');
  t.match((e as ProviderError).message, /cancelled/);
  t.same(cancelled, ['task-9'], 'CancelTask was sent');
});

t.test('a task stuck running past the deadline → transient, uncertain', async (t) => {
  const { client, reads } = scripted([{ state: 'running' }]);
  const e = await waitForTask(client, task, testContext(), { call, timeoutMs: 60 }).catch((x: unknown) => x);
  t.ok(e instanceof ProviderError);
  t.equal((e as ProviderError).kind, 'transient');
  t.equal((e as ProviderError).retry, 'uncertain');
  t.match((e as ProviderError).message, /still running/);
  t.ok(reads() >= 2, 'polled more than once before giving up');
});

t.test('losing the connection while waiting → uncertain even when nothing was sent', async (t) => {
  const client = {
    async retrieve() {
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    },
    async cancelTask() {},
  } as unknown as VimClient;
  const e = await waitForTask(client, task, testContext(), { call, timeoutMs: 10_000 }).catch((x: unknown) => x);
  t.ok(e instanceof ProviderError);
  t.equal((e as ProviderError).kind, 'transient');
  t.equal((e as ProviderError).retry, 'uncertain', 'the task was started: its outcome is unknown');
  t.match((e as ProviderError).message, /waiting for task task-9/);
});

t.test('alongside: one read per poll carries both objects; the success poll hands the other back', async (t) => {
  const vm = { type: 'VirtualMachine', value: 'vm-1' };
  const specs: unknown[] = [];
  const infos = [{ state: 'running', progress: 50 }, { state: 'success', result: { attributes: { 'xsi:type': 'ManagedObjectReference', type: 'VirtualMachineSnapshot' }, $value: 'snapshot-3' } }];
  let reads = 0;
  const client = {
    async retrieve(spec: unknown) {
      specs.push(spec);
      const info = infos[Math.min(reads, infos.length - 1)] ?? {};
      const n = reads++;
      // The VM first, as a server may order them: the task's content is found by its MoRef.
      return [{ obj: { attributes: { type: 'VirtualMachine' }, $value: 'vm-1' }, propSet: { name: 'snapshot', val: { read: n } } }, infoContent(info)];
    },
  } as unknown as VimClient;
  const out = await waitForTaskOutcome(client, task, testContext(), { call, timeoutMs: 10_000, alongside: { obj: vm, paths: ['snapshot'] } });
  t.same(out.result, { type: 'VirtualMachineSnapshot', value: 'snapshot-3' });
  t.same(out.alongside?.get('snapshot'), { read: 1 }, 'the VM as read in the poll that saw success');
  t.equal(specs.length, 2, 'one read per poll');
  t.same(specs[0], {
    propSet: [{ type: 'Task', pathSet: ['info'] }, { type: 'VirtualMachine', pathSet: ['snapshot'] }],
    objectSet: [{ obj: task }, { obj: vm }],
  });
});

t.test('alongside: the other object missing from the answer → alongside null, result still returned', async (t) => {
  const client = {
    async retrieve() {
      return [infoContent({ state: 'success', result: { attributes: { 'xsi:type': 'ManagedObjectReference', type: 'VirtualMachineSnapshot' }, $value: 'snapshot-4' } })];
    },
  } as unknown as VimClient;
  const out = await waitForTaskOutcome(client, task, testContext(), { call, timeoutMs: 10_000, alongside: { obj: { type: 'VirtualMachine', value: 'vm-1' }, paths: ['snapshot'] } });
  t.same(out.result, { type: 'VirtualMachineSnapshot', value: 'snapshot-4' });
  t.equal(out.alongside, null);
});

t.test('the first poll follows the task call at once (no wait before it)', async (t) => {
  const { client, reads } = scripted([{ state: 'success' }]);
  const ac = new AbortController();
  // Aborting right after the synchronous start: a poll that waited first would see the abort and cancel.
  const p = waitForTask(client, task, testContext(ac.signal), { call, timeoutMs: 10_000 });
  await Promise.resolve();
  ac.abort();
  await p;
  t.equal(reads(), 1, 'one read, done before any backoff');
});
