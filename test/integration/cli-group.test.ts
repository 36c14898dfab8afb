/** `snapvisor group create|show|retry` against a real listening daemon (app + engine + store; fake provider). */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { build, cliFor, TOKENS } from './api-helper.ts';

t.test('group create (by VM ids and by target + pattern), show, retry of a partial group', async (t) => {
  const h = await build(t);
  const cli = await cliFor(h.app, TOKENS.writer);
  const web = await h.vmId('web-1');
  const build1 = await h.vmId('build');

  const created = await cli(['group', 'create', '--name', 'pair', '--mode', 'memory', '--vm', web, '--vm', build1]);
  t.equal(created.code, 0, created.stderr);
  t.match(created.stdout, /state:\s+succeeded/);
  t.match(created.stdout, /members:\s+2 succeeded/);
  t.match(created.stdout, /VM\s+TARGET\s+STATE\s+STARTED\s+SNAPSHOT\s+JOB\s+ERROR\n/);
  t.match(created.stdout, /web-1\s+lab\s+succeeded/);
  const groupId = /group:\s+(\S+)/.exec(created.stdout)![1]!;

  const shown = await cli(['group', 'show', groupId]);
  t.equal(shown.code, 0);
  t.match(shown.stdout, /build\s+lab\s+succeeded/);
  t.match(shown.stdout, /spread:\s+\d+\.\d{3} s/);

  // A final error (not retried): one of the two members fails, the other is made.
  h.provider.failNext('createSnapshot', new ProviderError('lab', 'conflict', 'the VM is locked'));
  const partial = await cli(['group', 'create', '--name', 'by-pattern', '--mode', 'offline', '--target', 'lab', '--pattern', '{web,db}-*']);
  t.equal(partial.code, 1, 'a group that is not all made exits 1');
  t.match(partial.stdout, /db-1\s+lab/);
  t.match(partial.stdout, /web-1\s+lab/);
  t.notMatch(partial.stdout, /build\s+lab/, 'the pattern left build out');
  const partialId = /group:\s+(\S+)/.exec(partial.stdout)![1]!;
  t.match(partial.stdout, /state:\s+partial/);
  t.match(partial.stdout, /conflict: \[snapvisor\] \[lab\] the VM is locked/);
  t.match(partial.stderr, new RegExp(`snapvisor group retry ${partialId}`));
  const retried = await cli(['group', 'retry', partialId]);
  t.equal(retried.code, 0, retried.stderr);
  t.match(retried.stdout, /state:\s+succeeded/);

  const nothing = await cli(['group', 'retry', groupId]);
  t.equal(nothing.code, 1);
  t.match(nothing.stderr, /no failed or cancelled member/);
  const usage = await cli(['group', 'create', '--name', 'x', '--mode', 'memory']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /--vm ID/);
  t.equal((await cli(['group', 'frobnicate'])).code, 2);
});
