// The web console (issue 14) on the real daemon in demo mode, driven by Debian's Chromium: served
// under a strict CSP, sign-in keeps the token out of URLs, cookies and localStorage, a snapshot made
// through the dialog shows live progress, then revert and delete with children through the tree
// (checked against the REST API too), keyboard use of the tree, a phone-sized window, sign-out.
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Locator, Page } from 'playwright-core';
import { artefactPath, launchChromium } from './browser.ts';
import { api, REPO, startDaemon, until } from './daemon.ts';
import { assertCleanPage, assertStrictCsp, escapeRegExp, horizontalOverflow, submitToken, UI_TIMEOUT_MS, watchPage } from './console-page.ts';

const TOKEN = 'console-e2e-token-3f8a1c6d9b2e7f40';
const TOKEN_NAME = 'demo-admin';
/** Set to refresh docs/console.png (the README's picture) from this run's VM tree screenshot. */
const UPDATE_DOCS = process.env.SNAPVISOR_UPDATE_DOCS_SCREENSHOT === '1';

interface TreeNode { id: string; name: string; current: boolean; children: TreeNode[] }

const wait = { timeout: UI_TIMEOUT_MS };

function nav(page: Page): Locator {
  return page.getByRole('navigation', { name: 'Main' });
}

/** Follows a header link; on a narrow window the links may sit behind a menu button. */
async function goVia(page: Page, link: string): Promise<void> {
  const target = nav(page).getByRole('link', { name: link, exact: true });
  if (!(await target.isVisible())) await page.getByRole('button', { name: /menu/i }).click(wait);
  await target.click(wait);
}

async function oneH1(t: Test, page: Page, what: string): Promise<void> {
  await page.locator('h1').first().waitFor(wait);
  t.equal(await page.locator('h1').count(), 1, `${what}: one <h1>`);
}

function treeItem(page: Page, name: string): Locator {
  return page.getByRole('tree', { name: 'Snapshot tree' }).getByRole('treeitem', { name: new RegExp(`^${escapeRegExp(name)}`) });
}

/** Waits until exactly the named snapshot is the tree's current one. */
async function waitCurrent(page: Page, name: string): Promise<void> {
  await treeItem(page, name).and(page.locator('[data-current="true"]')).waitFor(wait);
  await page.waitForFunction(() => document.querySelectorAll('[role="treeitem"][data-current="true"]').length === 1, undefined, wait);
}

/** Opens the create dialog, fills it and submits; returns when the dialog is gone. */
async function createSnapshot(page: Page, name: string, description: string): Promise<void> {
  await page.getByRole('button', { name: 'Create snapshot', exact: true }).click(wait);
  const dialog = page.getByRole('dialog', { name: 'Create snapshot' });
  await dialog.getByLabel('Name', { exact: true }).fill(name, wait);
  await dialog.getByLabel('Description', { exact: true }).fill(description, wait);
  await dialog.getByLabel('Mode', { exact: true }).selectOption('memory', wait);
  await dialog.getByRole('button', { name: 'Create', exact: true }).click(wait);
  await dialog.waitFor({ state: 'detached', ...wait });
}

/** Clicks an action of the selected snapshot and confirms it in the dialog it opens. */
async function confirmSnapshotAction(t: Test, page: Page, action: string): Promise<void> {
  await page.getByRole('region', { name: 'Snapshot details' }).getByRole('button', { name: action, exact: true }).click(wait);
  const dialog = page.getByRole('dialog');
  await dialog.waitFor(wait);
  t.equal(await dialog.getByRole('button', { name: 'Cancel', exact: true }).count(), 1, `the ${action} dialog can be cancelled`);
  await dialog.getByRole('button', { name: action, exact: true }).click(wait);
  await dialog.waitFor({ state: 'detached', ...wait });
}

/** The index, among the tree's items in document order, of the one that has keyboard focus (-1: none). */
async function focusedTreeIndex(page: Page): Promise<number> {
  return page.getByRole('tree', { name: 'Snapshot tree' }).evaluate((tree) => {
    const active = document.activeElement;
    const descendant = active?.getAttribute('aria-activedescendant');
    const focused = descendant ? document.getElementById(descendant) : active;
    return [...tree.querySelectorAll('[role="treeitem"]')].indexOf(focused as Element);
  });
}

async function waitFocusedIndex(page: Page, index: number): Promise<number> {
  return until(`tree focus on item ${index}`, async () => ((await focusedTreeIndex(page)) === index ? index + 1 : undefined), UI_TIMEOUT_MS, 50).then(() => index);
}

async function apiTree(url: string, vmId: string): Promise<TreeNode[]> {
  const res = await api<{ roots: TreeNode[] }>({ url }, TOKEN, 'GET', `/v1/vms/${vmId}/snapshots?view=tree`);
  return res.body.roots;
}

function flatten(nodes: TreeNode[]): TreeNode[] {
  return nodes.flatMap((n) => [n, ...flatten(n.children)]);
}

t.test('the web console on the demo daemon', async (t) => {
  const d = await startDaemon({ cwd: t.testdir({}), env: { SNAPVISOR_TOKEN: TOKEN } });
  t.teardown(() => d.kill('SIGKILL'));
  const browser = await launchChromium();
  t.teardown(() => browser.close());
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  const watch = await watchPage(page);
  // The daemon lists the demo VMs only after its first sync.
  const vms = await until('demo VMs synced', async () => {
    const r = await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', '/v1/vms');
    return r.body.items.length >= 5 ? r.body.items : undefined;
  }, UI_TIMEOUT_MS);
  const web01 = vms.find((v) => v.name === 'web-01')!;

  // One page and one session through every step, in order: each step starts where the last ended.
  await t.test('served at /ui/ under a CSP that allows no inline code', async (t) => {
    const root = await fetch(`${d.url}/`, { redirect: 'manual' });
    t.ok(root.status >= 300 && root.status < 400, `GET / redirects (${root.status})`);
    t.equal(new URL(root.headers.get('location') ?? '', `${d.url}/`).pathname, '/ui/', 'GET / → /ui/');
    const html = await page.goto(`${d.url}/ui/`);
    t.equal(html?.status(), 200, '/ui/ is served without a token');
    assertStrictCsp(t, (await html?.headerValue('content-security-policy')) ?? null);
    // The contract says /ui redirects; the daemon serves the same page there (its assets are named
    // by absolute path, so either works): what matters is that it is that page, under the same CSP.
    const bare = await fetch(`${d.url}/ui`, { redirect: 'manual' });
    if (bare.status >= 300 && bare.status < 400) {
      t.equal(new URL(bare.headers.get('location') ?? '', `${d.url}/ui`).pathname, '/ui/', 'GET /ui → /ui/');
    } else {
      t.equal(bare.status, 200, 'GET /ui serves the console');
      t.equal(await bare.text(), await html?.text(), 'GET /ui is the same page as /ui/');
      t.equal(bare.headers.get('content-security-policy'), (await html?.headerValue('content-security-policy')) ?? null, 'under the same CSP');
    }
  });

  await t.test('sign-in: a wrong token is refused, the right one is kept in sessionStorage only', async (t) => {
    await page.getByLabel('API token').waitFor(wait);
    t.equal(await page.getByLabel('API token').getAttribute('type'), 'password', 'the token field hides what is typed');
    await oneH1(t, page, 'sign-in');
    await page.screenshot({ path: artefactPath('sign-in.png') });
    await submitToken(page, 'not-the-token-0123456789abcdef0123');
    await page.getByRole('alert').filter({ hasText: 'This token was not accepted' }).waitFor(wait);
    t.pass('a wrong token: "This token was not accepted"');
    await submitToken(page, TOKEN);
    await page.getByText(`Signed in as ${TOKEN_NAME}`).waitFor(wait);
    t.pass(`signed in as ${TOKEN_NAME}`);
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('snapvisor.token'),
      local: Object.keys(localStorage).map((k) => `${k}=${localStorage.getItem(k) ?? ''}`),
      cookie: document.cookie,
    }));
    t.equal(stored.session, TOKEN, 'the token is in sessionStorage under snapvisor.token');
    t.notOk(stored.local.some((entry) => entry.includes(TOKEN)), 'not in localStorage');
    t.notOk(stored.cookie.includes(TOKEN), 'not in a cookie');
  });

  await t.test("targets: the demo target's capabilities, an unsupported mode with the reason", async (t) => {
    await goVia(page, 'Targets');
    const target = page.getByRole('region', { name: 'demo-vbox' });
    const crash = target.getByRole('table', { name: 'Capabilities' }).getByRole('row').filter({ hasText: /crash/ });
    await crash.waitFor(wait);
    const crashText = (await crash.textContent()) ?? '';
    t.match(crashText, /unsupported/, 'crash mode: "unsupported"');
    t.match(crashText, /disk-only snapshot/, "crash mode: the provider's reason");
    await oneH1(t, page, 'targets');
    await page.screenshot({ path: artefactPath('targets.png') });
  });

  await t.test('VMs: the table, its columns and pager, the name search', async (t) => {
    await goVia(page, 'VMs');
    const table = page.getByRole('table', { name: 'VMs' });
    for (const vm of vms) await table.getByRole('link', { name: vm.name, exact: true }).waitFor(wait);
    for (const column of ['Name', 'Target', 'Power', 'Snapshots', 'Chain depth', 'Consolidation']) {
      t.equal(await table.getByRole('columnheader', { name: column, exact: true }).count(), 1, `column ${column}`);
    }
    t.ok(await page.getByRole('button', { name: 'Next page', exact: true }).isDisabled(), 'Next page is disabled on the only page');
    t.equal(await page.getByRole('button', { name: 'First page', exact: true }).count(), 1, 'a First page button');
    await oneH1(t, page, 'VMs');
    await page.screenshot({ path: artefactPath('vms.png') });
    await page.getByLabel('Name starts with').fill('web');
    await table.getByRole('link', { name: 'db-primary', exact: true }).waitFor({ state: 'detached', ...wait });
    t.equal(await table.getByRole('link', { name: /^web-0[12]$/ }).count(), 2, 'the search keeps web-01 and web-02');
    await page.waitForURL(/#\/vms\?name=web$/, wait);
    t.pass('the search is in the route (#/vms?name=web)');
    await table.getByRole('link', { name: 'web-01', exact: true }).click();
    await page.waitForURL(new RegExp(`#/vms/${escapeRegExp(web01.id)}$`), wait);
    await page.getByRole('heading', { level: 1, name: 'web-01', exact: true }).waitFor(wait);
    await oneH1(t, page, 'VM');
  });

  await t.test('VM: a memory snapshot through the dialog, its progress live', async (t) => {
    await page.getByRole('button', { name: 'Create snapshot', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Create snapshot' });
    const crashOption = dialog.getByLabel('Mode', { exact: true }).locator('option[value="crash"]');
    t.ok(await crashOption.isDisabled(), 'a mode the target lacks is a disabled option');
    // The reason may be in the option itself or in the select's description.
    const reason = await dialog.getByLabel('Mode', { exact: true }).evaluate((select) => {
      const option = select.querySelector('option[value="crash"]');
      const described = (select.getAttribute('aria-describedby') ?? '').split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? '');
      return [option?.textContent ?? '', option?.getAttribute('title') ?? '', ...described].join(' ');
    });
    t.match(reason, /disk-only snapshot/, "with the provider's reason");
    await dialog.getByRole('button', { name: 'Cancel', exact: true }).click();
    await dialog.waitFor({ state: 'detached', ...wait });

    // Polled from inside the page every 20 ms: the simulator takes about 1.5 s in 10 % steps.
    const progressSeen = page.waitForFunction(
      () => {
        const w = window as unknown as { snapvisorProgressSeen?: number[] };
        const seen = (w.snapvisorProgressSeen ??= []);
        const bar = document.querySelector<HTMLProgressElement>('progress[aria-label="Progress of snapshot.create job"]');
        if (bar !== null && bar.hasAttribute('value')) {
          const percent = Math.round((bar.value / bar.max) * 100);
          if (seen[seen.length - 1] !== percent) seen.push(percent);
        }
        return seen.includes(100) ? seen : false;
      },
      undefined,
      { polling: 20, timeout: UI_TIMEOUT_MS },
    );
    await createSnapshot(page, 'ui-first', 'made through the console');
    const jobs = page.getByRole('region', { name: 'Jobs for this VM' });
    await jobs.getByRole('progressbar', { name: 'Progress of snapshot.create job' }).first().waitFor(wait);
    const seen = (await (await progressSeen).jsonValue()) as number[];
    t.ok(seen.includes(100), `the progress reaches 100 (seen: ${seen.join(', ')})`);
    t.ok(seen.some((v) => v > 0 && v < 100), 'an intermediate value was shown while the job ran');
    await jobs.getByText(/succeeded/).first().waitFor(wait);
    await waitCurrent(page, 'ui-first');
    t.match((await treeItem(page, 'ui-first').textContent()) ?? '', /current/, 'the new snapshot is marked current');
  });

  await t.test('VM: a child, keyboard through the tree, revert to the first', async (t) => {
    await createSnapshot(page, 'ui-second', '');
    await waitCurrent(page, 'ui-second');
    t.equal(await page.getByRole('tree', { name: 'Snapshot tree' }).getByRole('treeitem').count(), 2, 'two snapshots in the tree');

    // Keyboard: arrows move focus between the items, Enter selects.
    const tree = page.getByRole('tree', { name: 'Snapshot tree' });
    const tabStop = tree.locator('[role="treeitem"][tabindex="0"]');
    if ((await tabStop.count()) > 0) await tabStop.first().focus();
    else await tree.focus();
    let at = await focusedTreeIndex(page);
    if (at === -1) {
      // A tree that takes focus itself (aria-activedescendant) may mark no item until the first key.
      await page.keyboard.press('ArrowDown');
      at = await waitFocusedIndex(page, 0);
    }
    t.ok(at === 0 || at === 1, `focusing the tree puts focus on an item (${at})`);
    const other = at === 0 ? 1 : 0;
    await page.keyboard.press(other > at ? 'ArrowDown' : 'ArrowUp');
    t.equal(await waitFocusedIndex(page, other), other, `${other > at ? 'ArrowDown' : 'ArrowUp'} moves focus`);
    await page.keyboard.press(other > at ? 'ArrowUp' : 'ArrowDown');
    t.equal(await waitFocusedIndex(page, at), at, 'and back');
    if (at === 1) {
      await page.keyboard.press('ArrowUp');
      await waitFocusedIndex(page, 0);
    }
    await page.keyboard.press('Enter');
    await treeItem(page, 'ui-first').and(page.locator('[aria-selected="true"]')).waitFor(wait);
    t.pass('Enter selects the focused item');

    await confirmSnapshotAction(t, page, 'Revert');
    await waitCurrent(page, 'ui-first');
    const afterRevert = flatten(await apiTree(d.url, web01.id));
    t.same(afterRevert.filter((s) => s.current).map((s) => s.name), ['ui-first'], 'the API agrees: ui-first is current');
  });

  await t.test('VM: a branch, then delete with children empties the tree', async (t) => {
    await createSnapshot(page, 'ui-third', 'a branch');
    await waitCurrent(page, 'ui-third');
    await page.screenshot({ path: artefactPath('vm-tree.png') });
    if (UPDATE_DOCS) {
      const docs = path.join(REPO, 'docs', 'console.png');
      mkdirSync(path.dirname(docs), { recursive: true });
      copyFileSync(artefactPath('vm-tree.png'), docs);
      t.ok(statSync(docs).size < 300_000, 'docs/console.png stays under 300 kB');
    }
    await treeItem(page, 'ui-first').click();
    await treeItem(page, 'ui-first').and(page.locator('[aria-selected="true"]')).waitFor(wait);
    await confirmSnapshotAction(t, page, 'Delete with children');
    await page.getByRole('treeitem').first().waitFor({ state: 'detached', ...wait });
    t.same(await apiTree(d.url, web01.id), [], 'the API agrees: no snapshots left');
  });

  await t.test('Jobs: every job the page started, each with its progress', async (t) => {
    await goVia(page, 'Jobs');
    const jobTable = page.getByRole('table', { name: 'Jobs' });
    const started = await api<{ items: Array<{ id: string }> }>(d, TOKEN, 'GET', `/v1/jobs?vm=${web01.id}`);
    t.ok(started.body.items.length >= 5, 'the API lists the jobs the console started');
    for (const job of started.body.items) {
      await jobTable.getByRole('progressbar', { name: `Progress of job ${job.id}`, exact: true }).waitFor(wait);
      t.equal(await jobTable.locator(`a[href="#/jobs/${job.id}"]`).count(), 1, `job ${job.id}: a link to its page`);
    }
    await oneH1(t, page, 'jobs');

    // Live: a job started elsewhere (the API) appears and runs to the end without a reload.
    const web02 = vms.find((v) => v.name === 'web-02')!;
    const elsewhere = await api<{ id: string }>(d, TOKEN, 'POST', `/v1/vms/${web02.id}/snapshots`, { name: 'from the API', mode: 'memory' });
    const label = `Progress of job ${elsewhere.body.id}`;
    await jobTable.getByRole('progressbar', { name: label, exact: true }).waitFor(wait);
    await page.waitForFunction((l) => document.querySelector<HTMLProgressElement>(`progress[aria-label="${l}"]`)?.value === 100, label, wait);
    t.pass('a job started through the API shows up and reaches 100 % live');
    await page.screenshot({ path: artefactPath('jobs.png') });
  });

  await t.test('every other page has its one <h1>', async (t) => {
    const job = (await api<{ items: Array<{ id: string }> }>(d, TOKEN, 'GET', `/v1/jobs?vm=${web01.id}`)).body.items[0]!;
    await page.locator(`a[href="#/jobs/${job.id}"]`).first().click();
    await page.waitForURL(new RegExp(`#/jobs/${escapeRegExp(job.id)}$`), wait);
    await page.getByRole('heading', { level: 1, name: /^Job/ }).waitFor(wait);
    await oneH1(t, page, 'a job');
    for (const section of ['Policies', 'Groups']) {
      await goVia(page, section);
      await page.getByRole('heading', { level: 1, name: new RegExp(section, 'i') }).waitFor(wait);
      await oneH1(t, page, section);
    }
  });

  await t.test('a phone-sized window: no sideways scrolling, the navigation reachable', async (t) => {
    await page.setViewportSize({ width: 390, height: 844 });
    await goVia(page, 'VMs');
    const link = page.getByRole('table', { name: 'VMs' }).getByRole('link', { name: 'web-01', exact: true });
    await link.waitFor(wait);
    const vmsOverflow = await horizontalOverflow(page);
    t.ok(vmsOverflow.scrollWidth <= vmsOverflow.innerWidth, `VMs page at 390 px: no horizontal overflow (scrollWidth ${vmsOverflow.scrollWidth}, innerWidth ${vmsOverflow.innerWidth})`);
    await page.screenshot({ path: artefactPath('vms-narrow.png') });
    await link.click();
    await page.getByRole('heading', { level: 1, name: 'web-01', exact: true }).waitFor(wait);
    await createSnapshot(page, 'ui-narrow', '');
    await waitCurrent(page, 'ui-narrow');
    const vmOverflow = await horizontalOverflow(page);
    t.ok(vmOverflow.scrollWidth <= vmOverflow.innerWidth, `VM page at 390 px: no horizontal overflow (scrollWidth ${vmOverflow.scrollWidth}, innerWidth ${vmOverflow.innerWidth})`);
    await page.screenshot({ path: artefactPath('vm-narrow.png') });
    await goVia(page, 'Jobs');
    await page.waitForURL(/#\/jobs$/, wait);
    t.pass('the navigation is reachable at 390 px');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await t.test('sign-out forgets the token', async (t) => {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.getByLabel('API token').waitFor(wait);
    t.equal(await page.evaluate(() => sessionStorage.getItem('snapvisor.token')), null, 'sessionStorage no longer holds it');
  });

  t.notOk(watch.requests.some((u) => u.includes(TOKEN)), `the token is in no requested URL (${watch.requests.length} requests)`);
  assertCleanPage(t, watch, [401]);
});
