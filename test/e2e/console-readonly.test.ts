// The web console with a read-only token, on a lab whose VM and snapshot names are hostile (markup,
// quotes and shell syntax, right-to-left text, emoji): the names render as literal text and run
// nothing, and no write-scope button exists for the reader. An admin's view of the same pages is the
// control that those buttons exist under the names looked for.
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { artefactPath, launchChromium } from './browser.ts';
import { api, startDaemon, until } from './daemon.ts';
import { READ_TOKEN, TOKEN, vboxDaemonSetup } from './vbox-daemon.ts';
import { assertCleanPage, escapeRegExp, signIn, UI_TIMEOUT_MS, watchPage, type PageWatch } from './console-page.ts';

const HOSTILE = [
  '<script>alert(1)</script>',
  `"quoted" 'name'; $(rm -rf /)`,
  'שלום\u200f-vm',
  'db 🚀 prod',
  '<img src=x onerror=alert(1)>',
];
/** Holds a job running (its take stalls at 50 %), so the Jobs page has something to cancel. */
const STALLED_VM = 'app-1';
const HOSTILE_DESCRIPTION = '<b>bold</b> & <i onmouseover=alert(2)>x</i>';
/** The hypervisor's own words in a failed job's error, shown on the Jobs page. */
const HOSTILE_ERROR = 'refused <svg onload=alert(3)>';

const WRITE_BUTTONS = ['Create snapshot', 'Delete all snapshots', 'Consolidate', 'Revert', 'Delete', 'Delete with children', 'Cancel', 'Retry'];

const wait = { timeout: UI_TIMEOUT_MS };

interface Vm { id: string; name: string }

/** What page code could have injected: every script (the app's own are counted first), img, on* attribute. */
async function injectedMarkup(page: Page): Promise<{ scripts: string[]; imgs: number; handlers: string[] }> {
  return page.evaluate(() => ({
    scripts: [...document.scripts].map((s) => s.src || `inline: ${s.textContent ?? ''}`),
    imgs: document.images.length,
    handlers: [...document.querySelectorAll('*')].flatMap((el) => [...el.attributes].filter((a) => a.name.startsWith('on')).map((a) => `${el.tagName} ${a.name}`)),
  }));
}

async function writeButtons(page: Page): Promise<string[]> {
  const present: string[] = [];
  for (const name of WRITE_BUTTONS) if ((await page.getByRole('button', { name, exact: true }).count()) > 0) present.push(name);
  return present;
}

/** Waits for the VMs table to have a row per VM; returns each row's link as "<text> → <href>". */
async function vmLinks(page: Page, count: number): Promise<string[]> {
  const rows = page.getByRole('table', { name: 'VMs' }).locator('tbody tr');
  await rows.nth(count - 1).waitFor(wait);
  return rows.locator('a').evaluateAll((links) => links.map((a) => `${a.textContent ?? ''} → ${a.getAttribute('href') ?? ''}`));
}

/** Opens a VM from the VMs table; returns its page's <h1> text once that page shows. */
async function openVm(page: Page, vm: Vm): Promise<string | null> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'VMs', exact: true }).click(wait);
  await page.locator(`table a[href="#/vms/${vm.id}"]`).click(wait);
  // The list's own <h1> ("VMs") stays until the VM view has rendered.
  await page.waitForFunction(
    (id) => location.hash === `#/vms/${id}` && document.querySelector('h1') !== null && document.querySelector('h1')?.textContent !== 'VMs',
    vm.id,
    wait,
  );
  return page.locator('h1').textContent();
}

/** Every name is an exact text node or element text inside the snapshot tree (never parsed as markup). */
async function namesInTree(page: Page, names: string[]): Promise<boolean[]> {
  return page.getByRole('tree', { name: 'Snapshot tree' }).evaluate((tree, expected) => {
    const texts = new Set<string>();
    for (const el of tree.querySelectorAll('*')) texts.add(el.textContent ?? '');
    const walker = document.createTreeWalker(tree, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) texts.add(node.nodeValue ?? '');
    return expected.map((n) => texts.has(n));
  }, names);
}

async function newPage(browser: Browser): Promise<{ page: Page; watch: PageWatch }> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  return { page, watch: await watchPage(page) };
}

function assertNoInjection(t: Test, baseline: string[], seen: { scripts: string[]; imgs: number; handlers: string[] }, where: string): void {
  t.same(seen.scripts, baseline, `${where}: only the app's own scripts`);
  t.equal(seen.imgs, 0, `${where}: no <img> element`);
  t.same(seen.handlers, [], `${where}: no on* attribute`);
}

t.test('read-only console over hostile names', async (t) => {
  const setup = vboxDaemonSetup(t, {
    stepMs: 20,
    vms: [...HOSTILE.map((name) => ({ name, state: 'running' as const })), { name: STALLED_VM, state: 'running' }],
  });
  const d = await startDaemon({ cwd: setup.dir, env: setup.env });
  t.teardown(() => d.kill('SIGKILL'));
  const browser = await launchChromium();
  t.teardown(() => browser.close());

  const vms = await until('lab VMs synced', async () => {
    const r = await api<{ items: Vm[] }>(d, TOKEN, 'GET', '/v1/vms?target=lab');
    return r.body.items.length === HOSTILE.length + 1 ? r.body.items : undefined;
  }, UI_TIMEOUT_MS);
  const byName = (name: string): Vm => vms.find((v) => v.name === name)!;
  t.same(HOSTILE.map((n) => byName(n)?.name), HOSTILE, 'the daemon lists every hostile name as the hypervisor has it');

  // A chain of snapshots with the hostile names on the first hostile VM, made by the admin.
  const tree = byName(HOSTILE[0]!);
  for (const name of HOSTILE) {
    const made = await api<{ state: string }>(d, TOKEN, 'POST', `/v1/vms/${tree.id}/snapshots?wait=60`, { name, description: HOSTILE_DESCRIPTION, mode: 'memory' });
    t.equal(made.body.state, 'succeeded', `snapshot ${JSON.stringify(name)} made`);
  }
  // A failed job (Retry for a writer), whose error carries markup from the hypervisor.
  setup.lab.setFault('take', HOSTILE[3]!, { type: 'fail', code: 'VBOX_E_INVALID_OBJECT_STATE', message: HOSTILE_ERROR, times: 1 });
  const refused = await api<{ id: string; state: string; error: { message: string } | null }>(d, TOKEN, 'POST', `/v1/vms/${byName(HOSTILE[3]!).id}/snapshots?wait=60`, { name: 'refused', mode: 'memory' });
  t.equal(refused.body.state, 'failed', 'a job failed with a hostile error message');
  t.match(refused.body.error?.message ?? '', HOSTILE_ERROR);
  setup.lab.setFault('take', STALLED_VM, { type: 'stall' });
  const stalled = await api<{ id: string }>(d, TOKEN, 'POST', `/v1/vms/${byName(STALLED_VM).id}/snapshots`, { name: 'held', mode: 'memory' });
  await until('the held job running', async () => (await api<{ state: string }>(d, TOKEN, 'GET', `/v1/jobs/${stalled.body.id}`)).body.state === 'running', UI_TIMEOUT_MS);

  await t.test('the reader sees every name literally and no write button', async (t) => {
    const { page, watch } = await newPage(browser);
    await page.goto(`${d.url}/ui/#/sign-in`);
    await page.getByLabel('API token').waitFor(wait);
    const appScripts = (await injectedMarkup(page)).scripts;
    t.ok(appScripts.length > 0 && appScripts.every((s) => !s.startsWith('inline')), "the app's own scripts are external files");
    await signIn(page, d.url, READ_TOKEN, 'e2e-reader');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'VMs', exact: true }).click();
    t.same(
      (await vmLinks(page, vms.length)).sort(),
      vms.map((vm) => `${vm.name} → #/vms/${vm.id}`).sort(),
      'the VMs table lists every hostile name as its exact text, linked to its page',
    );
    t.same(await writeButtons(page), [], 'VMs page: no write-scope button');
    assertNoInjection(t, appScripts, await injectedMarkup(page), 'VMs page');

    for (const name of HOSTILE) {
      t.equal(await openVm(page, byName(name)), name, `VM page <h1> is exactly ${JSON.stringify(name)}`);
      t.same(await writeButtons(page), [], `VM ${JSON.stringify(name)}: no write-scope button`);
      assertNoInjection(t, appScripts, await injectedMarkup(page), `VM ${JSON.stringify(name)}`);
    }

    t.equal(await openVm(page, tree), tree.name, 'the VM with the hostile snapshots is open');
    await page.getByRole('treeitem').nth(HOSTILE.length - 1).waitFor(wait);
    t.same(await namesInTree(page, HOSTILE), HOSTILE.map(() => true), 'every snapshot name is in the tree as exact text');
    for (const name of HOSTILE) {
      const startsWith = new RegExp(`^${escapeRegExp(name)}`);
      t.equal(await page.getByRole('treeitem', { name: startsWith }).count(), 1, `a treeitem is named ${JSON.stringify(name)}`);
    }
    await page.getByRole('treeitem', { name: /^<img/ }).click();
    const details = page.getByRole('region', { name: 'Snapshot details' });
    await details.getByText(HOSTILE[4]!, { exact: true }).first().waitFor(wait);
    t.ok((await details.textContent())?.includes(HOSTILE_DESCRIPTION), 'the description is shown literally');
    t.same(await writeButtons(page), [], 'VM page with a snapshot selected: no write-scope button');
    await page.screenshot({ path: artefactPath('hostile-names-readonly.png') });
    assertNoInjection(t, appScripts, await injectedMarkup(page), 'VM page with details');

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.getByRole('table', { name: 'Jobs' }).getByRole('progressbar', { name: `Progress of job ${stalled.body.id}`, exact: true }).waitFor(wait);
    t.same(await writeButtons(page), [], 'Jobs page with a running job: no Cancel (nor any write) button');
    // Jobs name their VM once its name has loaded (until then, by a short id in <code>).
    const vmLink = page.getByRole('table', { name: 'Jobs' }).locator(`a[href="#/vms/${tree.id}"]`).first();
    await page.waitForFunction((id) => [...document.querySelectorAll(`table a[href="#/vms/${id}"]`)].some((a) => a.querySelector('code') === null), tree.id, wait);
    t.equal(await vmLink.textContent(), tree.name, "the Jobs table names the hostile VM literally");
    const refusedRow = page.getByRole('table', { name: 'Jobs' }).getByRole('row').filter({ has: page.locator(`a[href="#/jobs/${refused.body.id}"]`) });
    t.match((await refusedRow.textContent()) ?? '', HOSTILE_ERROR, "the failed job's error is shown literally");
    assertNoInjection(t, appScripts, await injectedMarkup(page), 'Jobs page');

    // The 403 path cannot be reached from the console here: every scope implies read, and a
    // reader is shown no control that writes.
    assertCleanPage(t, watch);
  });

  await t.test('control: the admin sees the write buttons the reader does not', async (t) => {
    const { page, watch } = await newPage(browser);
    await signIn(page, d.url, TOKEN, 'e2e');
    // A button the target's capabilities rule out is absent for everyone (VirtualBox: Consolidate).
    const caps = (await api<{ capabilities: Record<string, unknown> }>(d, TOKEN, 'GET', '/v1/targets/lab')).body.capabilities;
    const vmButtons = ['Create snapshot', 'Delete all snapshots', ...(caps.consolidate === true ? ['Consolidate'] : [])];
    t.equal(await openVm(page, tree), tree.name, 'the VM with the hostile snapshots is open');
    for (const name of vmButtons) await page.getByRole('button', { name, exact: true }).waitFor(wait);
    await page.getByRole('treeitem', { name: /^db 🚀 prod/ }).click();
    for (const name of ['Revert', 'Delete', 'Delete with children']) {
      await page.getByRole('region', { name: 'Snapshot details' }).getByRole('button', { name, exact: true }).waitFor(wait);
    }
    t.pass(`${[...vmButtons, 'Revert', 'Delete', 'Delete with children'].join(', ')}: there for an admin`);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Jobs', exact: true }).click();
    const jobRow = (id: string) => page.getByRole('table', { name: 'Jobs' }).getByRole('row').filter({ has: page.locator(`a[href="#/jobs/${id}"]`) });
    await jobRow(stalled.body.id).getByRole('button', { name: 'Cancel', exact: true }).waitFor(wait);
    t.pass('Cancel is there for an admin on the running job');
    await jobRow(refused.body.id).getByRole('button', { name: 'Retry', exact: true }).waitFor(wait);
    t.pass('Retry is there for an admin on the failed job');
    assertCleanPage(t, watch);
  });
});
