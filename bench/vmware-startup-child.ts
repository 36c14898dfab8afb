/**
 * (c) of bench/vmware.ts, in a fresh process so nothing is cached: the first VMware client (shipped
 * WSDL loaded and parsed, SOAP client, RetrieveServiceContent, Login — what `check()` needs), then a
 * second one for the same target with the WSDL already in memory. Prints one JSON line.
 */
import vmwareFactory from '../providers/vmware/index.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';

const options = JSON.parse(process.env.VMWARE_BENCH_LAB ?? 'null') as Record<string, unknown> | null;
if (!options) throw new Error('VMWARE_BENCH_LAB is not set');
const ctx = () => ({ signal: new AbortController().signal, progress: () => {}, log: silentLogger() });

async function firstCall(name: string): Promise<number> {
  const t0 = performance.now();
  const provider = vmwareFactory(name, options!, { log: silentLogger() });
  const health = await provider.check(ctx());
  const took = performance.now() - t0;
  await provider.close();
  if (!health.reachable || health.authOk === false) throw new Error(`check failed: ${health.message ?? ''}`);
  return took;
}

const coldMs = await firstCall('cold');
const warmMs = await firstCall('warm');
process.stdout.write(`${JSON.stringify({ coldMs, warmMs, rssMb: process.memoryUsage().rss / 2 ** 20 })}\n`);
