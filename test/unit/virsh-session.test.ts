// The virsh session framer: pure. The byte streams here are the shapes measured from libvirt 9.0's
// virsh reading stdin (see providers/kvm/virsh-session.ts); the lab test checks them for real.
import t from 'tap';
import { virshFramer, virshSessionProtocol } from '../../providers/kvm/virsh-session.ts';
import { SessionUnsupported } from '../../providers/shared/session-protocol.ts';

const TOKEN = 'f00dfeed';
const P = 'virsh # ';

const BANNER = "Welcome to virsh, the virtualization interactive terminal.\n\nType:  'help' for help with commands\n       'quit' to quit\n\n";

/**
 * What virsh writes for one framed request: the echo of each line, each command's output and the
 * newline virsh adds after every command. `output` is what a one-shot virsh prints (that newline included).
 */
function reply(seq: number, line: string, output: string, errors = ''): { stdout: string; stderr: string } {
  return {
    stdout: `${seq === 0 ? BANNER : ''}${P}${line}\n${output}${P}echo --err ${TOKEN}"${seq}"\n\n${P}echo ${TOKEN}"${seq}"\n${TOKEN}${seq}\n`,
    stderr: `${errors}error: ${TOKEN}${seq}\n`,
  };
}

function hello() {
  const f = virshFramer(TOKEN);
  const sent = f.hello();
  const probe = /^'echo' '(.*)'\n/.exec(sent)?.[1] ?? '';
  return { f, sent, probe };
}

t.test('the protocol: what it carries, how it starts', async (t) => {
  const p = virshSessionProtocol('qemu:///system');
  t.equal(p.command, "LC_ALL=C INPUTRC='/dev/null' COLUMNS='1000000' 'virsh' '-c' 'qemu:///system'");
  t.equal(p.remoteKillAfterMs, 0, 'no remote deadline: the pool kills a hung session');
  t.ok(p.carries(['virsh', '-c', 'qemu:///system', 'snapshot-create-as', '--domain', 'x', '--name', `it's "q" $(x) ; # 🦀 é -x`]), 'quotes, $(), ;, #, unicode, leading -');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///system', 'echo', 'a\nb']), 'a newline ends a line');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///system', 'echo', 'a\tb']), 'a tab is completion');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///system', 'echo', 'a\u0001b']), 'a control character is an editing key');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///system', 'echo', 'a\u0085b']), 'C1 controls too');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///other', 'list']), 'another connection');
  t.notOk(p.carries(['test', '-e', '/x']), 'not virsh');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///system']), 'no command');
  t.notOk(p.carries(['virsh', '-c', 'qemu:///system', 'echo', 'x'.repeat(400_000)]), 'longer than the width readline is told');
});

t.test('hello: learns the prompt, checks the probe came back exactly', async (t) => {
  const { f, sent, probe } = hello();
  t.match(sent, /^'echo' 'snapvisor-probe é€😀 x+'\necho --err f00dfeed"0"\necho f00dfeed"0"\n$/);
  const r = reply(0, `'echo' '${probe}'`, `${probe}\n`);
  t.equal(f.take({ stdout: r.stdout.slice(0, -1), stderr: r.stderr }, 0), undefined, 'stdout sentinel not complete yet');
  t.equal(f.take({ stdout: r.stdout, stderr: '' }, 0), undefined, 'stderr sentinel not there yet: wait');
  const done = f.take(r, 0);
  t.same(done?.result, { exitCode: 0, stdout: `${probe}\n`, stderr: '' }, 'the banner is not part of it');
  t.same(done?.consumed, { stdout: r.stdout.length, stderr: r.stderr.length });

  const read = virshFramer(TOKEN);
  const ro = reply(0, 'ignored', `${probe}\n`);
  t.ok(read.take({ stdout: ro.stdout.split(P).join('virsh > '), stderr: ro.stderr }, 0), "a read-only prompt ('virsh > ') is learnt too");
});

t.test('hello: a virsh that cannot be framed is unsupported, never guessed', async (t) => {
  const { probe } = hello();
  const mangled = reply(0, 'x', `${probe.replace('é', '\\303\\251')}\n`);
  t.throws(() => virshFramer(TOKEN).take(mangled, 0), SessionUnsupported, 'the probe changed on its way');
  const noErr = { stdout: reply(0, 'x', `${probe}\n`).stdout, stderr: "error: command 'echo' doesn't support option --err\n" };
  t.throws(() => virshFramer(TOKEN).take(noErr, 0), SessionUnsupported, 'libvirt without echo --err');
});

t.test('requests: output and errors exactly, exit code from error lines, leftovers kept', async (t) => {
  const { f, probe } = hello();
  f.take(reply(0, 'x', `${probe}\n`), 0);
  t.equal(f.frame(['virsh', '-c', 'u', 'snapshot-list', '--domain', "it's"], { seq: 1, timeoutMs: 1000 }), `'snapshot-list' '--domain' 'it'\\''s'\necho --err f00dfeed"1"\necho f00dfeed"1"\n`);

  const ok = reply(1, "'domstate' '--domain' 'x'", 'running\n\n');
  const next = { stdout: `${P}'list'`, stderr: 'error: partial' };
  const r1 = f.take({ stdout: ok.stdout + next.stdout, stderr: ok.stderr + next.stderr }, 1);
  t.same(r1?.result, { exitCode: 0, stdout: 'running\n\n', stderr: '' }, 'exactly what one-shot virsh prints');
  t.same(r1?.consumed, { stdout: ok.stdout.length, stderr: ok.stderr.length }, 'the next reply is left where it is');

  const failed = reply(2, "'snapshot-dumpxml' 'x'", '\n', "error: failed to get domain 'x'\nerror: Domain not found\n");
  t.same(f.take(failed, 2)?.result, { exitCode: 1, stdout: '\n', stderr: "error: failed to get domain 'x'\nerror: Domain not found\n" });

  const reconnected = reply(3, "'list'", 'a\n\n', 'error: Disconnected from qemu:///system due to end of file\nerror: Reconnected to the hypervisor\n');
  t.same(f.take(reconnected, 3)?.result, { exitCode: 0, stdout: 'a\n\n', stderr: '' }, "virsh's own disconnection notice and reconnection are not the command's failure");

  const lookAlike = `<description>${P}echo --err other"4"\n\n${P}echo other"4"\nother4\n</description>\n\n`;
  const forged = reply(4, "'snapshot-dumpxml'", lookAlike);
  t.same(f.take(forged, 4)?.result.stdout, lookAlike, 'look-alike sentinels without the token are output');
  t.equal(f.take({ stdout: forged.stdout.replace(/f00dfeed4\n$/, 'f00dfeed'), stderr: forged.stderr }, 4), undefined, 'a sentinel cut short is not the end');
});

t.test('a stream that is not framed as sent is refused', async (t) => {
  const { f, probe } = hello();
  f.take(reply(0, 'x', `${probe}\n`), 0);
  const r = reply(1, "'list'", 'x\n\n');
  t.throws(() => f.take({ stdout: `garbage${r.stdout}`, stderr: r.stderr }, 1), /does not start with the prompt/);
  t.throws(() => f.take({ stdout: r.stdout.replace(`echo --err ${TOKEN}"1"`, 'echo --err nope'), stderr: r.stderr }, 1), /not framed as sent/);
});
