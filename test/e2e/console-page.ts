/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The DOM library types the functions these tests run inside the page (page.evaluate and friends);
// without it playwright-core's element types resolve to nothing and that code goes unchecked.
/**
 * Shared by the web console's browser tests (console*.test.ts): what a page is watched for, signing
 * in through the form, and the checks on the HTML response's Content-Security-Policy. Not a test file.
 */
import type { Test } from 'tap';
import type { Page } from 'playwright-core';

/** Generous: the machine is shared and loaded; every wait is on a condition, never a sleep. */
export const UI_TIMEOUT_MS = 60_000;

export interface PageWatch {
  /** console.error lines and the browser's own error lines (failed loads, CSP refusals). */
  consoleErrors: string[];
  /** Uncaught exceptions and unhandled rejections in the page. */
  pageErrors: string[];
  /** securitypolicyviolation events, as "<directive> <blocked URI>". */
  cspViolations: string[];
  /** Every URL the page requested, in order. */
  requests: string[];
  /** alert/confirm/prompt dialogs: an injected name that ran script would open one. */
  dialogs: string[];
}

interface CspReporter {
  __snapvisorCspViolation(text: string): void;
}

/** Starts recording what PageWatch names; call before the first navigation. */
export async function watchPage(page: Page): Promise<PageWatch> {
  const watch: PageWatch = { consoleErrors: [], pageErrors: [], cspViolations: [], requests: [], dialogs: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') watch.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => watch.pageErrors.push(String(e)));
  page.on('request', (r) => watch.requests.push(r.url()));
  page.on('dialog', (d) => {
    watch.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  await page.exposeBinding('__snapvisorCspViolation', (_source, text: string) => {
    watch.cspViolations.push(text);
  });
  // Injected by the browser itself, outside the page's CSP: it must see violations, not cause them.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as CspReporter).__snapvisorCspViolation(`${e.effectiveDirective} ${e.blockedURI}`);
    });
  });
  return watch;
}

/**
 * The browser logs every 4xx response as a console error; those the test provokes on purpose
 * (a refused token) are expected, anything else the page logs is not.
 */
export function unexpectedConsoleErrors(watch: PageWatch, expectedStatuses: number[] = []): string[] {
  return watch.consoleErrors.filter((line) => {
    const failedLoad = /^Failed to load resource: the server responded with a status of (\d+)/.exec(line);
    return !(failedLoad && expectedStatuses.includes(Number(failedLoad[1])));
  });
}

/** Asserts nothing went wrong in the page: no errors, no CSP violations, no dialogs. */
export function assertCleanPage(t: Test, watch: PageWatch, expectedStatuses: number[] = []): void {
  t.same(unexpectedConsoleErrors(watch, expectedStatuses), [], 'no console errors');
  t.same(watch.pageErrors, [], 'no uncaught page errors');
  t.same(watch.cspViolations, [], 'no CSP violations');
  t.same(watch.dialogs, [], 'no dialog was opened');
}

/** Fills the sign-in form; the caller waits for what it expects (signed in, or an alert). */
export async function submitToken(page: Page, token: string): Promise<void> {
  await page.getByLabel('API token').fill(token, { timeout: UI_TIMEOUT_MS });
  await page.getByRole('button', { name: 'Sign in' }).click({ timeout: UI_TIMEOUT_MS });
}

/** Signs in through the form and waits for the header to name the token. */
export async function signIn(page: Page, baseUrl: string, token: string, tokenName: string): Promise<void> {
  await page.goto(`${baseUrl}/ui/#/sign-in`);
  await submitToken(page, token);
  await page.getByText(`Signed in as ${tokenName}`).waitFor({ timeout: UI_TIMEOUT_MS });
}

/** The directives of a CSP header by name (lower case), each with its source list. */
export function parseCsp(header: string): Map<string, string[]> {
  const directives = new Map<string, string[]>();
  for (const part of header.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) directives.set(name.toLowerCase(), sources);
  }
  return directives;
}

/** script-src and style-src (or default-src where one is absent) exist and allow no inline code or eval. */
export function assertStrictCsp(t: Test, header: string | null): void {
  t.ok(header, 'the console is served with a Content-Security-Policy');
  const csp = parseCsp(header ?? '');
  for (const directive of ['script-src', 'style-src']) {
    const sources = csp.get(directive) ?? csp.get('default-src');
    t.ok(sources, `${directive} is restricted (itself or by default-src)`);
    for (const unsafe of ["'unsafe-inline'", "'unsafe-eval'"]) {
      t.notOk(sources?.includes(unsafe), `${directive} does not allow ${unsafe}`);
    }
  }
}

/** A string matched literally inside a RegExp. */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The page is no wider than its window: nothing scrolls sideways. */
export async function horizontalOverflow(page: Page): Promise<{ scrollWidth: number; innerWidth: number }> {
  return page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
}
