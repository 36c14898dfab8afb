/**
 * The quoting is checked by a real shell, not by string comparison: each quoted line is run through
 * `/bin/sh -c` (dash here) and bash, and `printf '%s\0'` reports the argv the command received.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quoteArg, remoteCommand } from '../../providers/shared/shell-quote.ts';

const SHELLS = ['/bin/sh', '/bin/bash'];

const HOSTILE = [
  '',
  ' ',
  "it's",
  "'",
  "''",
  "'\\''",
  '"double"',
  'a; touch semicolon-ran',
  '$(touch dollar-paren-ran)',
  '`touch backtick-ran`',
  '$HOME',
  '${HOME}',
  '$((1+1))',
  'line1\nline2',
  '\n',
  'tab\there',
  '\r\n',
  'snapshot ünïcödé 快照 🧪',
  '-n',
  '--help',
  '-e',
  '*',
  '?',
  '[a-z]*',
  '~',
  '~root',
  'a|b',
  'a&b',
  'a && touch and-ran',
  '> redirect-ran',
  '< /etc/passwd',
  '\\',
  '\\\\n',
  '!',
  '!!',
  '#comment',
  'x=y',
  '{a,b}',
  '%s%n',
  '\x01\x1b[31m',
];

function runShell(shell: string, line: string, cwd: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(shell, ['-c', line], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', ...env } });
}

function splitNul(out: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === 0) {
      parts.push(out.subarray(start, i));
      start = i + 1;
    }
  }
  if (start !== out.length) throw new Error(`trailing bytes after last NUL: ${JSON.stringify(out.subarray(start).toString())}`);
  return parts;
}

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'shell-quote-'));
  // Files so that an unquoted `*` or `?` would visibly expand.
  writeFileSync(join(dir, 'a'), '');
  writeFileSync(join(dir, 'b'), '');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('quoteArg: simple shapes', async (t) => {
  t.equal(quoteArg(''), "''");
  t.equal(quoteArg('abc'), "'abc'");
  t.equal(quoteArg("it's"), `'it'\\''s'`);
  t.throws(() => quoteArg('a\0b'), /NUL/);
  t.throws(() => quoteArg('x\uD800y'), /surrogate/, 'a lone surrogate cannot be sent as UTF-8');
  t.equal(quoteArg('🧪'), "'🧪'", 'a surrogate pair is fine');
});

for (const shell of SHELLS) {
  t.test(`${shell}: every hostile argument arrives byte-exact, no side effects`, async (t) => {
    const dir = scratch(t);
    const line = ['printf', '%s\\0', ...HOSTILE].map(quoteArg).join(' ');
    const res = runShell(shell, line, dir);
    t.equal(res.status, 0, res.stderr.toString());
    const got = splitNul(res.stdout);
    t.equal(got.length, HOSTILE.length, 'one argument each, none split or merged');
    HOSTILE.forEach((want, i) => {
      t.same(got[i], Buffer.from(want, 'utf8'), `argument ${i}: ${JSON.stringify(want)}`);
    });
    t.same(readdirSync(dir).sort(), ['a', 'b'], 'nothing was created: no $(), backtick, ;, && or > ran');
  });

  t.test(`${shell}: a leading-dash argument stays an argument (not an option of the shell line)`, async (t) => {
    const dir = scratch(t);
    const res = runShell(shell, ['printf', '[%s]', '-n', '-e', '--'].map(quoteArg).join(' '), dir);
    t.equal(res.stdout.toString(), '[-n][-e][--]');
  });

  t.test(`${shell}: random strings from a hostile alphabet round-trip`, async (t) => {
    const dir = scratch(t);
    const alphabet = [..."'\"\\$`;&|<>(){}[]*?~!# \t\n\r-=%^äü快🧪abc"];
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const args: string[] = [];
    for (let i = 0; i < 300; i++) {
      let s = '';
      const len = rand() % 12;
      for (let j = 0; j < len; j++) s += alphabet[rand() % alphabet.length];
      args.push(s);
    }
    const res = runShell(shell, ['printf', '%s\\0', ...args].map(quoteArg).join(' '), dir);
    t.equal(res.status, 0, res.stderr.toString());
    const got = splitNul(res.stdout).map((b) => b.toString('utf8'));
    t.same(got, args);
    t.same(readdirSync(dir).sort(), ['a', 'b']);
  });
}

t.test('remoteCommand: shape', async (t) => {
  t.equal(
    remoteCommand(['virsh', '-c', 'qemu:///system', 'snapshot-list', 'dom 1', '--name'], { timeoutSec: 30 }),
    "LC_ALL=C timeout --kill-after=5 30 'virsh' '-c' 'qemu:///system' 'snapshot-list' 'dom 1' '--name'",
  );
  t.equal(remoteCommand(['true']), "LC_ALL=C 'true'");
  t.equal(remoteCommand(['true'], { env: { A_1: "x'y" } }), `LC_ALL=C A_1='x'\\''y' 'true'`);
  t.equal(remoteCommand(['true'], { timeoutSec: 0.25 }), "LC_ALL=C timeout --kill-after=5 0.250 'true'");
  t.throws(() => remoteCommand([]), /empty argv/);
  for (const bad of ['', '1X', 'A B', 'X=Y', 'A;B', '$(x)', 'ä']) {
    t.throws(() => remoteCommand(['true'], { env: { [bad]: 'v' } }), /invalid environment variable name/, JSON.stringify(bad));
  }
  for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e12]) {
    t.throws(() => remoteCommand(['true'], { timeoutSec: bad }), /invalid timeout/, String(bad));
  }
});

for (const shell of SHELLS) {
  t.test(`${shell}: remoteCommand runs with LC_ALL=C, quoted env, byte-exact argv`, async (t) => {
    const dir = scratch(t);
    const envValue = "v'$(touch env-ran);`x` \n ü";
    const line = remoteCommand(['sh', '-c', 'printf "%s\\0" "$LC_ALL" "$SNAP_V" "$@"', 'sh', ...HOSTILE], {
      env: { SNAP_V: envValue },
      timeoutSec: 20,
    });
    const res = runShell(shell, line, dir, { LC_ALL: 'POSIX' });
    t.equal(res.status, 0, res.stderr.toString());
    const got = splitNul(res.stdout).map((b) => b.toString('utf8'));
    t.same(got, ['C', envValue, ...HOSTILE]);
    t.same(readdirSync(dir).sort(), ['a', 'b']);
  });
}

t.test('remoteCommand: the remote timeout really ends the command', async (t) => {
  const dir = scratch(t);
  const started = Date.now();
  const res = runShell('/bin/sh', remoteCommand(['sleep', '30'], { timeoutSec: 0.3 }), dir);
  t.equal(res.status, 124, 'coreutils timeout exit status');
  t.ok(Date.now() - started < 10_000, 'did not wait for sleep 30');
});
