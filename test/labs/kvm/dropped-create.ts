/**
 * The KVM fault both transports are tested for: the SSH connection killed `delayMs` after a
 * create's `snapshot-create-as` went out, then the create retried with the same marker, as the
 * engine's retry and recovery do. Exactly one snapshot with that marker must exist afterwards.
 * A create faster than the delay is dropped after it ends: the retry must still find it.
 */
import { markerForJob, ProviderError } from '../../../providers/contract.ts';
import { testContext } from '../../../providers/conformance/suite.ts';
import { createKvmProvider } from '../../../providers/kvm/index.ts';
import type { CommandRunner } from '../../../providers/shared/command-runner.ts';
import { silentLogger } from '../../fixtures/fake-provider.ts';
import type { KvmLab } from './lab.ts';

interface Assert {
  ok(value: unknown, message: string): unknown;
  equal(found: unknown, wanted: unknown, message: string): unknown;
}

export async function dropMidCreate(
  tt: Assert,
  o: {
    lab: KvmLab;
    vmId: string;
    delayMs: number;
    /** The transport under test: every adapter call goes through it. */
    through: CommandRunner;
    /** Called once the first attempt and the drop are over (to check what the transport did). */
    afterFirst?: () => void;
  },
): Promise<void> {
  let dropped: Promise<void> | undefined;
  const runner: CommandRunner = {
    run(argv, options) {
      const result = o.through.run(argv, options);
      if (dropped === undefined && argv.includes('snapshot-create-as')) {
        dropped = new Promise((done) => setTimeout(() => done(o.lab.killSshSessions()), o.delayMs));
      }
      return result;
    },
  };
  const log = silentLogger();
  const p = createKvmProvider('lab', { uri: o.lab.uri, commandTimeoutSec: 60, sessions: false }, { log, runner });
  const spec = { name: `drop-${o.delayMs}`, description: '', mode: 'memory' as const, marker: markerForJob(`drop-${o.delayMs}-${Date.now()}`) };
  try {
    let first = 'succeeded';
    try {
      await p.createSnapshot(o.vmId, spec, testContext());
    } catch (e) {
      // uncertain when the create itself was cut off; transient when a read after it was.
      tt.ok(e instanceof ProviderError && e.kind === 'transient', `the interrupted create fails as transient (${e instanceof Error ? e.message : String(e)})`);
      first = e instanceof ProviderError ? `${e.kind}/${e.retry}` : 'other';
    }
    tt.ok(dropped !== undefined, 'the fault was injected');
    await dropped;
    o.afterFirst?.();
    // A read right after the drop may meet the dying connection: transient, retried as the engine
    // would — after a pause (its backoff starts at 1 s): three retries at once all met the connection
    // not yet known dead in a CI run under load ("Not connected").
    let again;
    for (let attempt = 1; ; attempt++) {
      try {
        again = await p.createSnapshot(o.vmId, spec, testContext());
        break;
      } catch (e) {
        if (!(e instanceof ProviderError && e.kind === 'transient' && attempt < 5)) throw e;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
    const withMarker = (await p.listSnapshots(o.vmId, testContext())).filter((s) => s.marker === spec.marker);
    tt.equal(withMarker.length, 1, `exactly one snapshot after the retry (drop after ${o.delayMs} ms; first attempt ${first})`);
    tt.equal(withMarker[0]?.providerRef, again.providerRef, 'the retry returned it');
  } finally {
    await p.close();
  }
}
