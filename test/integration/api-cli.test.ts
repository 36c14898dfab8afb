/** The CLI against a real listening daemon (app + engine + store; fake provider). */
import t, { type Test } from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { build, cliFor, TOKENS } from './api-helper.ts';

async function daemon(t: Test) {
  const h = await build(t);
  const cli = await cliFor(h.app, TOKENS.writer);
  return { h, cli };
}

t.test('targets, vms, snapshots (table and tree), create with progress, revert, delete, jobs', async (t) => {
  const { h, cli } = await daemon(t);
  const targets = await cli(['targets']);
  t.equal(targets.code, 0);
  t.match(targets.stdout, /^NAME\s+KIND\s+HEALTH\s+VMS\s+MODES\nlab\s+virtualbox\s+ok\s+3\s+memory,offline\n$/);
  const one = await cli(['targets', 'lab']);
  t.match(one.stdout, /mode crash:\s+no — VirtualBox cannot/);

  const vms = await cli(['vms', '--name', 'db']);
  t.match(vms.stdout, /db-1\s+lab\s+off\s+2\s+2/);
  const vm = await h.vmId('web-1');

  const created = await cli(['create', vm, '--name', 'first', '--mode', 'memory']);
  t.equal(created.code, 0, created.stderr);
  t.match(created.stdout, /job \S+: (queued|running|succeeded) \d+%/);
  t.match(created.stdout, /job \S+ succeeded snapshot \S+\n$/);
  const snapshotId = /snapshot (\S+)\n$/.exec(created.stdout)![1]!;

  const tty = await cli(['create', vm, '--name', 'second', '--mode', 'offline'], { tty: true });
  t.equal(tty.code, 0);
  t.match(tty.stdout, /\r\u001b\[2K\[#+\] 100%  succeeded/);

  const tree = await cli(['snapshots', vm, '--tree']);
  t.match(tree.stdout, /^first  \[memory, snapvisor\]  \S+\n└── second \* \(current\)  \[offline, snapvisor\]  \S+\n$/);
  const flat = await cli(['snapshots', vm]);
  t.match(flat.stdout, /^ID\s+NAME\s+MODE\s+OWNER\s+STATE\s+CREATED\s+CURRENT\n/);

  const shown = await cli(['snapshot', snapshotId]);
  t.match(shown.stdout, /name:\s+first/);

  t.equal((await cli(['revert', snapshotId])).code, 0);
  const deleted = await cli(['delete', snapshotId, '--children']);
  t.equal(deleted.code, 0);
  t.match((await cli(['snapshots', vm, '--tree'])).stdout, /^\(no snapshots\)\n$/);

  const jobs = await cli(['jobs', '--vm', vm]);
  t.equal(jobs.stdout.trim().split('\n').length, 1 + 4);
  const asJson = JSON.parse((await cli(['jobs', '--json', '--state', 'succeeded'])).stdout);
  t.equal(asJson.items.length, 4);
  const job = await cli(['job', asJson.items[0].id]);
  t.match(job.stdout, /state:\s+succeeded/);

  const noWait = await cli(['create', vm, '--name', 'later', '--mode', 'memory', '--no-wait', '--json']);
  t.equal(noWait.code, 0);
  t.equal(JSON.parse(noWait.stdout).kind, 'snapshot.create');

  t.equal((await cli(['create', vm, '--name', 'more', '--mode', 'memory'])).code, 0);
  const all = await cli(['delete-all', vm]);
  t.equal(all.code, 0, all.stderr);
  t.match(all.stdout, /job \S+ succeeded/);
  t.match((await cli(['snapshots', vm, '--tree'])).stdout, /^\(no snapshots\)\n$/, 'delete-all left none');
});

t.test('exit codes: failed job 1, problem 1, usage 2', async (t) => {
  const { h, cli } = await daemon(t);
  const vm = await h.vmId('web-1');
  h.provider.failNext('createSnapshot', new ProviderError('virtualbox', 'conflict', 'the VM is locked'));
  const failed = await cli(['create', vm, '--name', 'x', '--mode', 'memory']);
  t.equal(failed.code, 1);
  t.match(failed.stderr, /^error: job \S+ failed: conflict: /);

  const unsupported = await cli(['create', vm, '--name', 'x', '--mode', 'crash']);
  t.equal(unsupported.code, 1);
  t.match(unsupported.stderr, /^error: Unprocessable Content: .*VirtualBox cannot/);

  const missing = await cli(['snapshot', 'nope']);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, "error: Not Found: snapshot 'nope' not found\n");

  const forbidden = await cli(['create', vm, '--name', 'x', '--mode', 'memory'], { token: TOKENS.reader });
  t.equal(forbidden.code, 1);
  t.match(forbidden.stderr, /^error: Forbidden: /);

  t.equal((await cli(['create', vm, '--mode', 'memory'])).code, 2);
  t.equal((await cli(['frobnicate'])).code, 2);
  t.equal((await cli(['snapshots'])).code, 2);
  t.equal((await cli(['vms', '--bogus'])).code, 2);
  t.equal((await cli([])).code, 2);
  t.equal((await cli(['--help'])).code, 0);
});

t.test('create --option K=V: sent typed; a target without the option answers the 400, a malformed pair is a usage error', async (t) => {
  const { h, cli } = await daemon(t);
  const vm = await h.vmId('web-1');
  const refused = await cli(['create', vm, '--name', 'x', '--mode', 'memory', '--option', 'incremental=false']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /unknown create option 'incremental' \(this target takes none\)/);
  const bad = await cli(['create', vm, '--name', 'x', '--mode', 'memory', '--option', 'incremental']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--option needs NAME=VALUE/);
  const { createOptions } = await import('../../src/cli/run.ts');
  t.same(createOptions(['incremental=false', 'copies=3', 'tier=hot', 'note=a=b']), { incremental: false, copies: 3, tier: 'hot', note: 'a=b' });
});
