/**
 * Debian's Chromium, driven by playwright-core: the console tests and the paint benchmark use a real
 * browser, never a stand-in. Playwright's own browser downloads cannot work here (only package
 * registries are reachable), so test/labs/provision.sh installs `chromium` from apt and this finds
 * it. A missing browser is an error with the fix, never a skipped test.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { REPO } from './daemon.ts';

export const CHROMIUM = process.env.SNAPVISOR_CHROMIUM ?? '/usr/bin/chromium';

/** The flags the issue names: headless, no sandbox (root), nothing that reaches the network. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: run "bash test/labs/provision.sh" (installs Debian's chromium) or set SNAPVISOR_CHROMIUM`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** Where screenshots go: test artefacts, not committed (.gitignore). */
export function artefactPath(name: string): string {
  const dir = path.join(REPO, 'test', 'artefacts', 'ui');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
