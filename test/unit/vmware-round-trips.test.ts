/**
 * providers/vmware/index.ts: which vim25 calls createSnapshot and deleteSnapshot make, against a
 * scripted VimClient that keeps one VM's snapshot tree (node-soap shapes, see vmware-parse.test.ts).
 * The same paths against vcsim: test/integration/conformance-vmware.test.ts.
 */
import t from 'tap';
import { markerForJob, ProviderError, type CallContext, type CreateSpec } from '../../providers/contract.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import type { FilterSpecArg, VimClient } from '../../providers/vmware/client.ts';
import { VimFault, VimTransportError } from '../../providers/vmware/faults.ts';
import { createVmwareProvider } from '../../providers/vmware/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const VM = 'vm-1';
const ref = (type: string, value: string) => ({ attributes: { type }, $value: value });
const typedRef = (type: string, value: string) => ({ attributes: { 'xsi:type': 'ManagedObjectReference', type }, $value: value });

interface Snap { ref: string; name: string; description: string }

/** One VM with a flat list of root snapshots; every task succeeds inside its call, as in vcsim. */
function fakeVim(options: { treeLags?: boolean; removeResets?: boolean } = {}) {
  const snaps: Snap[] = [];
  const calls: string[] = [];
  const tasks = new Map<string, unknown>();
  let n = 0;
  const tree = () =>
    snaps.length === 0
      ? []
      : [{ name: 'snapshot', val: { currentSnapshot: ref('VirtualMachineSnapshot', snaps.at(-1)!.ref), rootSnapshotList: snaps.map((s) => ({ snapshot: ref('VirtualMachineSnapshot', s.ref), name: s.name, description: s.description, createTime: new Date('2026-11-23T21:00:00Z'), state: 'poweredOff', quiesced: false })) } }];
  const task = (result?: unknown) => {
    const id = `task-${++n}`;
    tasks.set(id, result);
    return { type: 'Task', value: id };
  };
  let lagging = false;
  const client = {
    async retrieve(spec: FilterSpecArg) {
      calls.push(`retrieve(${spec.objectSet.map((o) => o.obj.type).join('+')})`);
      return spec.objectSet.map(({ obj }) => {
        if (obj.type === 'Task') {
          const result = tasks.get(obj.value);
          return { obj: ref('Task', obj.value), propSet: { name: 'info', val: { state: 'success', ...(result ? { result } : {}) } } };
        }
        if (obj.value !== VM) throw new VimFault('ManagedObjectNotFound', `no ${obj.value}`);
        const paths = spec.propSet.find((p) => p.type === 'VirtualMachine')?.pathSet ?? [];
        const props: unknown[] = [];
        if (paths.includes('runtime.powerState')) props.push({ name: 'runtime.powerState', val: { attributes: { 'xsi:type': 'VirtualMachinePowerState' }, $value: 'poweredOn' } });
        // treeLags: the poll that sees the task's success still shows the tree from before it.
        if (paths.includes('snapshot')) props.push(...(lagging ? [] : tree()));
        lagging = false;
        return { obj: ref('VirtualMachine', VM), propSet: props };
      });
    },
    async createSnapshotTask(vm: { value: string }, a: { name: string; description: string }) {
      calls.push('CreateSnapshot_Task');
      if (vm.value !== VM) throw new VimFault('ManagedObjectNotFound', `no ${vm.value}`);
      const s = { ref: `snapshot-${++n}`, name: a.name, description: a.description };
      snaps.push(s);
      lagging = options.treeLags === true;
      return task(typedRef('VirtualMachineSnapshot', s.ref));
    },
    async removeSnapshotTask(snapshot: { value: string }) {
      calls.push('RemoveSnapshot_Task');
      if (options.removeResets) throw new VimTransportError('reset', 'the connection failed (ECONNRESET)', true, 'ECONNRESET');
      const i = snaps.findIndex((s) => s.ref === snapshot.value);
      if (i < 0) throw new VimFault('ManagedObjectNotFound', `no ${snapshot.value}`);
      snaps.splice(i, 1);
      return task();
    },
  } as unknown as VimClient;
  return { client, calls, snaps };
}

const spec = (job: string): CreateSpec => ({ name: job, description: '', mode: 'crash', marker: markerForJob(job) });
const first = (): CallContext => ({ ...testContext(), firstAttempt: true });
const provider = (client: VimClient) => createVmwareProvider('vc', { url: 'https://vc.invalid/sdk', username: 'u', password: 'p' }, { log: silentLogger(), client });

t.test('first attempt of a crash snapshot: the task call and one poll that also reads the tree', async (t) => {
  const vim = fakeVim();
  const made = await provider(vim.client).createSnapshot(VM, spec('job-1'), first());
  t.same(vim.calls, ['CreateSnapshot_Task', 'retrieve(Task+VirtualMachine)']);
  t.equal(made.providerRef, vim.snaps[0]?.ref);
  t.equal(made.current, true);
  t.equal(made.marker, markerForJob('job-1'));
});

t.test('not a first attempt: the marker is looked for first, and a snapshot made earlier is returned', async (t) => {
  const vim = fakeVim();
  const p = provider(vim.client);
  const made = await p.createSnapshot(VM, spec('job-2'), first());
  vim.calls.length = 0;
  const again = await p.createSnapshot(VM, spec('job-2'), testContext());
  t.equal(again.providerRef, made.providerRef, 'the same snapshot');
  t.same(vim.calls, ['retrieve(VirtualMachine)'], 'one read, no new task');
  t.equal(vim.snaps.length, 1);
  vim.calls.length = 0;
  await p.createSnapshot(VM, spec('job-3'), { ...testContext(), firstAttempt: false });
  t.same(vim.calls, ['retrieve(VirtualMachine)', 'CreateSnapshot_Task', 'retrieve(Task+VirtualMachine)'], 'firstAttempt false looks too');
});

t.test('a memory snapshot still reads the power state on a first attempt (not the marker)', async (t) => {
  const vim = fakeVim();
  await provider(vim.client).createSnapshot(VM, { ...spec('job-4'), mode: 'memory' }, first());
  t.same(vim.calls, ['retrieve(VirtualMachine)', 'CreateSnapshot_Task', 'retrieve(Task+VirtualMachine)']);
});

t.test('a tree that lags behind the task: read again rather than trust it', async (t) => {
  const vim = fakeVim({ treeLags: true });
  const made = await provider(vim.client).createSnapshot(VM, spec('job-5'), first());
  t.same(vim.calls, ['CreateSnapshot_Task', 'retrieve(Task+VirtualMachine)', 'retrieve(VirtualMachine)']);
  t.equal(made.providerRef, vim.snaps[0]?.ref);
});

t.test('delete: the task call and one poll; gone already is success; an unknown VM is not_found', async (t) => {
  const vim = fakeVim();
  const p = provider(vim.client);
  const made = await p.createSnapshot(VM, spec('job-6'), first());
  vim.calls.length = 0;
  await p.deleteSnapshot(VM, made.providerRef, { children: false }, testContext());
  t.same(vim.calls, ['RemoveSnapshot_Task', 'retrieve(Task)'], 'no existence read first');
  t.equal(vim.snaps.length, 0);
  vim.calls.length = 0;
  await p.deleteSnapshot(VM, made.providerRef, { children: false }, testContext());
  t.same(vim.calls, ['RemoveSnapshot_Task', 'retrieve(VirtualMachine)'], 'ManagedObjectNotFound → the VM is read, then success');
  const e = await p.deleteSnapshot('vm-404', made.providerRef, { children: false }, testContext()).catch((x: unknown) => x);
  t.ok(e instanceof ProviderError && e.kind === 'not_found', 'snapshot gone and VM unknown → not_found');
});

t.test('delete that fails in transport: a read tells an unknown VM (not_found) from a failure to report', async (t) => {
  const vim = fakeVim({ removeResets: true });
  const p = provider(vim.client);
  const gone = await p.deleteSnapshot('vm-404', 'snapshot-7', { children: false }, testContext()).catch((x: unknown) => x);
  t.ok(gone instanceof ProviderError && gone.kind === 'not_found', 'VM gone → not_found, not the connection error');
  const kept = await p.deleteSnapshot(VM, 'snapshot-7', { children: false }, testContext()).catch((x: unknown) => x);
  t.ok(kept instanceof ProviderError && kept.kind === 'transient', 'VM there → the connection error stands');
});
