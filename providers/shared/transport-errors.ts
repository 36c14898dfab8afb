/**
 * Transport failures (the command never finished with an exit code) become ProviderErrors the
 * same way for every adapter that runs a tool: a timeout, an abort or a dropped connection after
 * sending is `uncertain` for a call that may change the VM, `transient` otherwise; SSH login and
 * host-key refusals are `auth`. Each adapter only says which tool it runs and how to explain a
 * tool that cannot be started.
 */
import { ProviderError, type RetryClass } from '../contract.ts';
import { CommandError } from './command-runner.ts';
import { SshAuthError } from './ssh.ts';

export interface CallInfo {
  /** What Snapvisor was doing, e.g. "take snapshot of VM X" — starts the message. */
  what: string;
  /** The command may change the VM: an interrupted call is `uncertain`, not safely repeatable. */
  mutating: boolean;
}

export interface ToolInfo {
  provider: string;
  /** The tool's name in messages, e.g. "virsh". */
  tool: string;
  /** The message for a tool that could not be started. */
  cannotRun(err: CommandError): string;
}

export function fromTransportError(err: unknown, call: CallInfo, tool: ToolInfo): ProviderError {
  if (err instanceof ProviderError) return err;
  const { provider } = tool;
  if (err instanceof SshAuthError) {
    return new ProviderError(provider, 'auth', `${call.what}: SSH authentication failed: ${err.message}`, { cause: err });
  }
  if (err instanceof CommandError) {
    const retry: RetryClass = call.mutating && err.sent ? 'uncertain' : 'transient';
    switch (err.failure) {
      case 'timeout':
        return new ProviderError(provider, 'transient', `${call.what}: ${tool.tool} timed out and was killed`, { retry, cause: err });
      case 'aborted':
        return new ProviderError(provider, 'transient', `${call.what}: cancelled`, { retry, cause: err });
      case 'spawn':
        return new ProviderError(provider, 'transient', `${call.what}: ${tool.cannotRun(err)}`, { retry: err.sent ? retry : 'transient', cause: err });
      case 'output-limit':
        return new ProviderError(provider, 'internal', `${call.what}: ${tool.tool} produced too much output`, { retry, cause: err });
      case 'disconnected':
        return new ProviderError(provider, 'transient', `${call.what}: ${err.message}`, { retry, cause: err });
    }
  }
  return new ProviderError(provider, 'internal', `${call.what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
