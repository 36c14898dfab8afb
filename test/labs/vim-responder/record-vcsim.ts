/**
 * Records raw vim25 exchanges with a lab vcsim (test/labs/vcsim) into test/fixtures/vmware/vcsim-0.24/:
 * for each step `<name>.request.xml` (exactly what was sent, passwords redacted), `<name>.response.xml` (exactly what
 * came back) and one line in `index.json` (method, HTTP status, whether a session cookie was sent
 * or set). The responder's XML is modelled on these files and its tests compare against them.
 *
 *   npx tsx test/labs/vim-responder/record-vcsim.ts     # needs the vcsim build (test/labs/vcsim/build.sh)
 *
 * Re-recording overwrites the directory; ids, UUIDs and times change, shapes should not.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startVcsim } from '../vcsim/lab.ts';
import { runVcsimSequence } from './sequence.ts';
import { bodyOf, parseXml, type XmlNode } from './xml.ts';

export const RECORDINGS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vmware', 'vcsim-0.24');

export interface RecordingEntry {
  name: string;
  method: string;
  status: number;
  sentCookie: boolean;
  setsCookie: boolean;
  /** The Set-Cookie header with the session key replaced by `<key>`, to show its attributes. */
  setCookie?: string;
  contentType: string;
  note: string;
}

async function main(): Promise<void> {
  const labDir = mkdtempSync(join(tmpdir(), 'snapvisor-vcsim-record-'));
  const lab = await startVcsim({ dir: labDir, tls: false });
  rmSync(RECORDINGS_DIR, { recursive: true, force: true });
  mkdirSync(RECORDINGS_DIR, { recursive: true });
  const index: RecordingEntry[] = [];
  let cookie = '';

  async function step(name: string, body: string, note: string, withCookie = true): Promise<XmlNode> {
    const method = /<([A-Za-z_]+) xmlns="urn:vim25">/.exec(body)?.[1] ?? '?';
    const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: '"urn:vim25/6.5"' };
    const sentCookie = withCookie && cookie !== '';
    if (sentCookie) headers.cookie = cookie;
    const response = await fetch(lab.sdkUrl, { method: 'POST', headers, body });
    const text = await response.text();
    const setCookie = response.headers.get('set-cookie');
    if (setCookie) cookie = setCookie.split(';')[0] ?? '';
    // The lab password is a fixed test value, but recordings are not the place for any password.
    writeFileSync(join(RECORDINGS_DIR, `${name}.request.xml`), body.replace(/<password>[^<]*<\/password>/, '<password>(redacted)</password>') + '\n');
    writeFileSync(join(RECORDINGS_DIR, `${name}.response.xml`), text.endsWith('\n') ? text : text + '\n');
    const entry: RecordingEntry = { name, method, status: response.status, sentCookie, setsCookie: setCookie !== null, contentType: response.headers.get('content-type') ?? '', note };
    if (setCookie) entry.setCookie = setCookie.replace(/=[^;]*/, '=<key>');
    index.push(entry);
    return bodyOf(parseXml(text)).node;
  }
  try {
    await runVcsimSequence(step, lab);
  } finally {
    writeFileSync(join(RECORDINGS_DIR, 'index.json'), JSON.stringify({ recordedWith: 'vcsim built from Debian golang-github-vmware-govmomi-dev 0.24.2 (test/labs/vcsim)', recordedAt: new Date().toISOString(), exchanges: index }, null, 2) + '\n');
    await lab.stop();
    rmSync(labDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
