/** `snapvisor drift` against a real listening API (app + engine + store; fake provider). */
import t from 'tap';
import { build, cliFor, TOKENS } from './api-helper.ts';

t.test('snapvisor drift: one row per item, and orphans said to be unsupported', async (t) => {
  const h = await build(t);
  const cli = await cliFor(h.app, TOKENS.reader);

  const web = [...h.provider.vms.values()].find((v) => v.name === 'web-1')!;
  const build1 = [...h.provider.vms.values()].find((v) => v.name === 'build')!;
  h.provider.addExternalSnapshot(web.id, 'by-hand');
  h.provider.removeVm(build1.id);
  await h.engine.syncTarget('lab');

  const out = await cli(['drift']);
  t.equal(out.code, 0, out.stderr);
  const lines = out.stdout.trimEnd().split('\n');
  t.match(lines[0], /^TARGET\s+KIND\s+VM\s+ITEM\s+DETAIL$/);
  t.match(out.stdout, /lab\s+created-outside\s+web-1\s+by-hand\s+made /);
  t.match(out.stdout, /lab\s+vm-gone\s+build\s+-\s+gone \d{4}-/);
  t.match(out.stdout, /lab\s+orphans\s+-\s+-\s+not supported by this provider/);
  t.match(out.stdout, /lab\s+created-outside\s+db-1\s+base\s+/, "the fake's seeded snapshots were not made by Snapvisor either");
  t.equal(lines.length, 6, 'header, three made outside, one VM gone, orphans');

  const json = await cli(['--json', 'drift', '--target', 'lab']);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.stdout), { items: [{ target: 'lab', summary: { createdOutside: 3, vmsGone: 1, orphans: null } }] });
  const unknown = await cli(['drift', '--target', 'nope']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /nope/);
});
