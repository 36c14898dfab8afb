/**
 * The Hyper-V scripts' output protocol read back (providers/hyperv/script-output.ts), and what each
 * outcome becomes (providers/hyperv/errors.ts). The real scripts run against the lab in
 * test/integration/conformance-hyperv.test.ts and hyperv-faults.test.ts.
 */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { fromScriptOutcome } from '../../providers/hyperv/errors.ts';
import { readScriptOutput, type ScriptOutcome } from '../../providers/hyperv/script-output.ts';
import { SCRIPT_NAMES, scriptText } from '../../providers/hyperv/scripts.ts';
import { CMD_MAX_COMMAND_CHARS, powershellEncoding } from '../../providers/shared/command-encoding.ts';

const call = { what: "target 'hv': make a memory checkpoint of VM x", mutating: true };
const run = (stdout: string, exitCode: number, stderr = '') => ({ stdout, stderr, exitCode });
/** What the adapter hands fromScriptOutcome: anything but a result. */
const notResult = (o: ScriptOutcome) => {
  if (o.type === 'result') throw new Error('unexpected result');
  return o;
};

t.test('a result line is the result, whatever else was printed around it', async (t) => {
  t.same(readScriptOutput('noise\r\n##snapvisor-result {"a":[1,2]}\r\n', 0), { type: 'result', value: { a: [1, 2] } });
  t.same(readScriptOutput('\uFEFF##snapvisor-result null\n', 0), { type: 'result', value: null });
  t.same(readScriptOutput('##snapvisor-result {"a":1}\n', 1), { type: 'none' }, 'a non-zero exit is never a success');
  t.same(readScriptOutput('', 0), { type: 'none' }, 'exit 0 without a result line is not a success');
  t.same(readScriptOutput('##snapvisor-result {not json\n', 0), { type: 'none' });
});

t.test('error lines: a cmdlet failure (exit 1) or our own refusal (exit 2)', async (t) => {
  const failure = '##snapvisor-error {"message":"Unable to find a snapshot matching the given criteria.","fullyQualifiedErrorId":"ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot","category":"ObjectNotFound","exceptionType":"Microsoft.HyperV.PowerShell.VirtualizationException"}\n';
  const f = readScriptOutput(failure, 1);
  t.equal(f.type, 'failure');
  const refusal = readScriptOutput('##snapvisor-error {"kind":"conflict","message":"a memory checkpoint needs it running"}\n', 2);
  t.same(refusal, { type: 'refusal', refusal: { kind: 'conflict', message: 'a memory checkpoint needs it running' } });
  t.equal(readScriptOutput('##snapvisor-error {"kind":"conflict","message":"x"}\n', 1).type, 'failure', 'a kind only counts with exit 2');
  t.equal(readScriptOutput('##snapvisor-result {}\n##snapvisor-error {"message":"late"}\n', 1).type, 'failure', 'an error line wins over a result line');

  const e = fromScriptOutcome(notResult(f), run(failure, 1), call);
  t.equal(e.kind, 'not_found');
  t.equal(e.nativeCode, 'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot');
  t.match(e.message, /Unable to find a snapshot/);
  const r = fromScriptOutcome(notResult(refusal), run('', 2), call);
  t.equal(r.kind, 'conflict');
  t.equal(fromScriptOutcome({ type: 'refusal', refusal: { kind: 'bogus', message: 'x' } }, run('', 2), call).kind, 'internal', 'an unknown kind is internal');
  const transient = fromScriptOutcome({ type: 'refusal', refusal: { kind: 'transient', message: 'merging' } }, run('', 2), call);
  t.equal(transient.retry, 'transient');
});

t.test('cmdlet failures map by FullyQualifiedErrorId and category, never by the (localised) text', async (t) => {
  const of = (fullyQualifiedErrorId: string, category: string, mutating = true) =>
    fromScriptOutcome({ type: 'failure', failure: { message: 'Hyper-V no pudo encontrar una máquina virtual', fullyQualifiedErrorId, category, exceptionType: 'Microsoft.HyperV.PowerShell.VirtualizationException' } }, run('', 1), { ...call, mutating });
  t.equal(of('InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM', 'InvalidArgument').kind, 'not_found', 'Get-VM: unable to find a VM (§2.6)');
  t.equal(of('ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.StopVM', 'ObjectNotFound').kind, 'not_found');
  t.equal(of('x', 'PermissionDenied').kind, 'auth');
  t.equal(of('x', 'ResourceBusy').retry, 'transient');
  t.equal(of('x', 'InvalidOperation').kind, 'conflict');
  const unknown = of('Unexpected,Microsoft.HyperV.PowerShell.Commands.RemoveVMSnapshot', 'NotSpecified');
  t.equal(unknown.kind, 'internal');
  t.equal(unknown.retry, 'uncertain', 'a failed change may have changed part of the VM: look before repeating');
  t.not(of('x', 'NotSpecified', false).retry, 'uncertain', 'a failed read is not uncertain');
});

t.test('no protocol line: the reason comes from the CLIXML on stderr', async (t) => {
  const clixml = '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">_x001B_[31;1mParserError: _x001B_[31;1mMissing closing \')\' in expression._x001B_[0m_x000A_</S></Objs>';
  const e = fromScriptOutcome({ type: 'none' }, run('', 1, clixml), call);
  t.type(e, ProviderError);
  t.equal(e.kind, 'internal');
  t.match(e.message, /exited with code 1: .*Missing closing/);
  t.notMatch(e.message, /CLIXML|_x00|\u001b/, 'no framing, escapes or ANSI in the message');
  const silent = fromScriptOutcome({ type: 'none' }, run('', 0, ''), call);
  t.match(silent.message, /exited with code 0 without reporting a result/, 'a failure PowerShell reported as success is still a failure');
  t.equal(silent.retry, 'uncertain');
});

t.test('every script: common helpers + body in a handler, ASCII only, no user data', async (t) => {
  for (const name of SCRIPT_NAMES) {
    const text = scriptText(name);
    t.match(text, /^# Prepended to every Snapvisor Hyper-V script/, `${name}: starts with common.ps1`);
    t.match(text, /\} catch \{ Write-SnapvisorFailure \$_ \}\n$/, `${name}: ends in the failure handler`);
    t.notMatch(text, /[^\x09\x0a\x0d\x20-\x7e]/, `${name}: ASCII only (no code page or editor can change a byte of them)`);
  }
  const big = powershellEncoding({ provider: 'hyperv', shell: 'cmd', scriptOn: 'stdin' }).encode({ script: scriptText('create'), params: { notes: 'x'.repeat(20_000) } }, { timeoutMs: 600_000 });
  t.ok(big.command.length <= CMD_MAX_COMMAND_CHARS, `the longest script with long notes still fits under cmd.exe (${big.command.length} chars)`);
});
