/**
 * The ARM fake in a process of its own, for benchmarks: the fake's CPU (TLS, JSON for thousands of
 * resources) must not be counted as the daemon's. Driven over IPC by bench/azure.ts:
 * { cmd: 'start', options } → { type: 'started', endpoint, authorityHost, ca, … };
 * { cmd: 'addVms', seeds } → { type: 'vms', vms }; { cmd: 'counters' } → { type: 'counters', counters };
 * { cmd: 'close' } ends the process.
 */
import { startArmFake, type ArmFake, type ArmFakeOptions, type FakeVmSeed } from '../test/labs/arm-fake/index.ts';

type Command = { cmd: 'start'; options: ArmFakeOptions } | { cmd: 'addVms'; seeds: FakeVmSeed[] } | { cmd: 'counters' } | { cmd: 'close' };

let fake: ArmFake | null = null;
const send = (m: object) => process.send?.(m);

process.on('message', (m: Command) => {
  void (async () => {
    switch (m.cmd) {
      case 'start':
        fake = await startArmFake(m.options);
        send({
          type: 'started',
          endpoint: fake.endpoint,
          authorityHost: fake.authorityHost,
          ca: fake.ca,
          location: fake.location,
          subscriptionId: fake.subscriptionId,
          tenantId: fake.tenantId,
          clientId: fake.clientId,
          clientSecret: fake.clientSecret,
        });
        break;
      case 'addVms':
        send({ type: 'vms', vms: m.seeds.map((s) => fake!.addVm(s)) });
        break;
      case 'counters':
        send({ type: 'counters', counters: { ...fake!.counters } });
        break;
      case 'close':
        await fake?.close();
        process.exit(0);
    }
  })().catch((e: unknown) => {
    process.stderr.write(`arm-fake child: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
});
