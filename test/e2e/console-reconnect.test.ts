// The console's live stream has no replay: when it comes back after a gap (a daemon restart), the
// console reads again what it shows. Here the stream is kept away after a restart while the REST API
// answers, a snapshot is made meanwhile, and the open VM page must show it once the stream is back —
// with nothing but the resync to tell it.
import t from 'tap';
import { launchChromium } from './browser.ts';
import { api, freePort, startDaemon, until } from './daemon.ts';
import { assertCleanPage, signIn, UI_TIMEOUT_MS, watchPage } from './console-page.ts';

const TOKEN = 'console-reconnect-token-5c2e9a7d1f3b8e60';

t.test('after the live stream was down, the open page reads again what it missed', async (t) => {
  const cwd = t.testdir({});
  const port = await freePort();
  const env = { SNAPVISOR_TOKEN: TOKEN };
  let d = await startDaemon({ cwd, env, port });
  t.teardown(() => d.kill('SIGKILL'));
  const vms = await until('demo VMs synced', async () => {
    const r = await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', '/v1/vms?name=web-02');
    return r.body.items.length === 1 ? r.body.items : undefined;
  }, UI_TIMEOUT_MS);
  const vm = vms[0]!;

  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  const watch = await watchPage(page);
  await signIn(page, d.url, TOKEN, 'demo-admin');
  await page.goto(`${d.url}/ui/#/vms/${vm.id}`);
  await page.getByRole('heading', { level: 1, name: 'web-02' }).waitFor();
  const live = page.locator('.live');
  await live.filter({ hasText: /^live$/ }).waitFor();
  t.equal(await page.getByRole('treeitem').count(), 0, 'no snapshots yet');

  // The stream cannot come back until the test lets it; everything else reaches the daemon.
  let streamBlocked = true;
  await page.route('**/v1/events', (route) => (streamBlocked ? route.abort('connectionrefused') : route.continue()));
  await d.kill('SIGTERM');
  await live.filter({ hasText: 'reconnecting' }).waitFor();
  t.pass('the header says the stream is reconnecting');
  d = await startDaemon({ cwd, env, port });

  const made = await api<{ state: string; result: { snapshotId: string } | null }>(d, TOKEN, 'POST', `/v1/vms/${vm.id}/snapshots?wait=60`, {
    name: 'made while the stream was away',
    mode: 'memory',
  });
  t.equal(made.body.state, 'succeeded', 'a snapshot was made through the API meanwhile');
  t.equal(await page.getByRole('treeitem').count(), 0, 'the page has not seen it: its events went nowhere');

  streamBlocked = false;
  await live.filter({ hasText: /^live$/ }).waitFor();
  await page.getByRole('treeitem', { name: /^made while the stream was away/ }).waitFor();
  t.pass('once the stream is back, the tree shows the snapshot it missed');
  t.equal(await page.locator('[role="treeitem"][data-current="true"]').count(), 1, 'and marks it current');
  // The refused stream and the requests made while the daemon was down are the only failures.
  assertCleanPage(t, { ...watch, consoleErrors: watch.consoleErrors.filter((l) => !/ERR_CONNECTION_REFUSED|Failed to fetch|net::ERR/.test(l)) });
});
