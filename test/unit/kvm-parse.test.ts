import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MERGE_MARKER, parseDomainXml, parseDomState, parseNameList, parseSnapshotXml, parseVirshError } from '../../providers/kvm/parse.ts';

// Verbatim output of the real lab (test/labs/kvm/capture-fixtures.sh; commands in INDEX.tsv).
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'kvm');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

t.test('fixture index records the exit code of every capture', async (t) => {
  const rows = fixture('INDEX.tsv').trimEnd().split('\n').slice(1).map((l) => l.split('\t'));
  const byFile = new Map(rows.map((r) => [r[0], r]));
  t.equal(byFile.get('error-unknown-domain.stderr')?.[1], '1');
  t.equal(byFile.get('snapshot-dumpxml-description.xml')?.[1], '0');
  for (const [file] of rows) t.ok(file && fixture(file) !== undefined, `${file} exists`);
});

t.test('parseSnapshotXml: internal snapshot with RAM of a running domain', async (t) => {
  const s = parseSnapshotXml(fixture('snapshot-dumpxml-internal-running.xml'));
  t.equal(s.name, 'base');
  t.equal(s.description, 'first snapshot');
  t.equal(s.state, 'running');
  t.equal(s.parent, null);
  t.equal(s.memory, 'internal');
  t.equal(s.memoryFile, null);
  t.type(s.creationTime, 'number');
  t.ok(s.creationTime > 1_600_000_000);
  t.equal(s.createdAt, new Date(s.creationTime * 1000).toISOString());
  // The snapshot's own <disks>, not the embedded domain definition's devices.
  t.same(s.disks, [{ name: 'vda', snapshot: 'internal', source: null, driverType: null }]);
  t.equal(s.domainUuid, '6f1c2a9e-0b7d-4c1e-9a55-3d2f0e8b1a01');
});

t.test('parseSnapshotXml: description with XML specials, unicode, newlines and edge whitespace', async (t) => {
  const s = parseSnapshotXml(fixture('snapshot-dumpxml-description.xml'));
  t.equal(s.name, 'with desc');
  t.equal(s.parent, 'base');
  t.equal(
    s.description,
    'Before upgrade <b>&amp;</b> "quoted" \'single\' & <tag/>\n' +
      'zweite Zeile: ünïcødé ✓ 日本語 🚀\n' +
      '  indented line with trailing spaces   \n\n' +
      'snapvisor:job-0123',
    'entities decoded exactly once, whitespace kept',
  );
});

t.test('parseSnapshotXml: name with leading/trailing spaces and XML specials; CR is gone', async (t) => {
  const s = parseSnapshotXml(fixture('snapshot-dumpxml-special-name.xml'));
  t.equal(s.name, '  a&b <c> "d" \'e\' ');
  t.equal(s.parent, '1e3');
  // Created with 'tab\there\r\ncrlf  ': libvirt stores the description without the CR.
  t.equal(s.description, 'tab\there\ncrlf  ');
});

t.test('parseSnapshotXml: number-like text stays a string', async (t) => {
  const s = parseSnapshotXml(fixture('snapshot-dumpxml-numeric-like.xml'));
  t.equal(s.name, '1e3');
  t.equal(s.description, '007');
  const synthetic = parseSnapshotXml(
    '<domainsnapshot><name>007</name><description>0x10</description><state>shutoff</state>' +
      '<parent><name>1e3</name></parent><creationTime>1700000000</creationTime><memory snapshot=\'no\'/></domainsnapshot>',
  );
  t.equal(synthetic.name, '007');
  t.equal(synthetic.description, '0x10');
  t.equal(synthetic.parent, '1e3');
  t.equal(synthetic.memory, 'no');
  t.same(synthetic.disks, []);
  t.equal(synthetic.domainUuid, null);
});

t.test('parseSnapshotXml: paused and shut-off internal snapshots', async (t) => {
  const paused = parseSnapshotXml(fixture('snapshot-dumpxml-internal-paused.xml'));
  t.equal(paused.state, 'paused');
  t.equal(paused.memory, 'internal');
  const off = parseSnapshotXml(fixture('snapshot-dumpxml-internal-shutoff.xml'));
  t.equal(off.name, 'cold');
  t.equal(off.state, 'shutoff');
  t.equal(off.memory, 'no');
  t.same(off.disks.map((d) => d.snapshot), ['internal']);
  t.equal(off.domainUuid, '6f1c2a9e-0b7d-4c1e-9a55-3d2f0e8b1a03');
});

t.test('parseSnapshotXml: external disk-only and external with memory', async (t) => {
  const ext = parseSnapshotXml(fixture('snapshot-dumpxml-external-disk-only.xml'));
  t.equal(ext.name, 'ext1');
  t.equal(ext.state, 'disk-snapshot');
  t.equal(ext.memory, 'no');
  t.equal(ext.description, '');
  t.same(ext.disks, [{ name: 'vda', snapshot: 'external', source: '/tmp/kvmcap/cap-db01.ext1', driverType: 'qcow2' }]);
  const mem = parseSnapshotXml(fixture('snapshot-dumpxml-external-memory.xml'));
  t.equal(mem.state, 'running');
  t.equal(mem.parent, 'ext2');
  t.equal(mem.memory, 'external');
  t.equal(mem.memoryFile, '/tmp/kvmcap/cap-db01.extmem.mem');
  t.same(mem.disks.map((d) => d.source), ['/tmp/kvmcap/cap-db01.extmem']);
});

t.test('parseSnapshotXml rejects what is not a snapshot', async (t) => {
  t.throws(() => parseSnapshotXml(fixture('dumpxml-plain.xml')), /no <domainsnapshot>/);
  t.throws(() => parseSnapshotXml(''), /no <domainsnapshot>/);
  t.throws(() => parseSnapshotXml('<domainsnapshot><name>x</name></domainsnapshot>'), /creationTime/);
  t.throws(() => parseSnapshotXml('<domainsnapshot><state>running</state><creationTime>1</creationTime></domainsnapshot>'), /without <name>/);
});

t.test('parseDomainXml: the live merge mark (as libvirt 9.0 prints `virsh metadata --live --set`)', async (t) => {
  const plain = fixture('dumpxml-plain.xml');
  t.equal(parseDomainXml(plain).startedPausedForMerge, false, 'no metadata');
  const withMeta = (inner: string) => plain.replace(/(<\/uuid>\n)/, `$1  <metadata>\n${inner}\n  </metadata>\n`);
  const marked = withMeta(`    <snapvisor:started-paused xmlns:snapvisor="${MERGE_MARKER.uri}"/>`);
  t.not(marked, plain, 'the fixture took the metadata');
  t.equal(parseDomainXml(marked).startedPausedForMerge, true, 'marked');
  const other = withMeta('    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">\n      <libosinfo:os id="http://debian.org/debian/12"/>\n    </libosinfo:libosinfo>');
  t.equal(parseDomainXml(other).startedPausedForMerge, false, 'someone else\'s metadata is not our mark');
  const both = withMeta(`    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"/>\n    <snapvisor:started-paused xmlns:snapvisor="${MERGE_MARKER.uri}"/>`);
  t.equal(parseDomainXml(both).startedPausedForMerge, true, 'found among other metadata');
});

t.test('parseDomainXml: plain domain', async (t) => {
  const d = parseDomainXml(fixture('dumpxml-plain.xml'));
  t.equal(d.name, 'cap-web01');
  t.equal(d.uuid, '6f1c2a9e-0b7d-4c1e-9a55-3d2f0e8b1a01');
  t.equal(d.type, 'qemu');
  t.equal(d.hasGuestAgentChannel, true);
  t.same(d.disks, [{ target: 'vda', type: 'file', device: 'disk', source: '/tmp/kvmcap/cap-web01.qcow2', format: 'qcow2', backingChain: [] }]);
  const off = parseDomainXml(fixture('dumpxml-shutoff.xml'));
  t.equal(off.hasGuestAgentChannel, false);
  t.same(off.disks.map((x) => x.backingChain), [[]]);
});

t.test('parseDomainXml: nested backingStore chain after external snapshots', async (t) => {
  const live = parseDomainXml(fixture('dumpxml-after-external.xml'));
  t.same(live.disks, [
    {
      target: 'vda',
      type: 'file',
      device: 'disk',
      source: '/tmp/kvmcap/cap-db01.ext2',
      format: 'qcow2',
      backingChain: ['/tmp/kvmcap/cap-db01.ext1', '/tmp/kvmcap/cap-db01.qcow2'],
    },
  ]);
  // The persistent definition points at the same active layer.
  t.equal(parseDomainXml(fixture('dumpxml-after-external-inactive.xml')).disks[0]?.source, '/tmp/kvmcap/cap-db01.ext2');
  // Deleting ext1 (middle of the chain) committed it: the chain lost one layer.
  t.same(parseDomainXml(fixture('dumpxml-after-external-delete.xml')).disks[0]?.backingChain, [
    '/tmp/kvmcap/cap-db01.ext2',
    '/tmp/kvmcap/cap-db01.qcow2',
  ]);
});

t.test('parseDomainXml: several disks, cdrom without source, name kept as text', async (t) => {
  const d = parseDomainXml(`<domain type='kvm'><name>007</name><uuid>00000000-0000-0000-0000-000000000001</uuid><devices>
    <disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/vg/lv'/><target dev='sda' bus='scsi'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/></disk>
  </devices></domain>`);
  t.equal(d.name, '007');
  t.equal(d.type, 'kvm');
  t.same(
    d.disks.map((x) => [x.target, x.device, x.source, x.format]),
    [
      ['sda', 'disk', '/dev/vg/lv', 'raw'],
      ['hdc', 'cdrom', null, 'raw'],
    ],
  );
  t.throws(() => parseDomainXml('<domain><name>x</name></domain>'), /uuid/);
});

t.test('parseDomState: captured states, with and without --reason', async (t) => {
  t.same(parseDomState(fixture('domstate-running.txt')), { powerState: 'running', raw: 'running', reason: null });
  t.same(parseDomState(fixture('domstate-running-reason.txt')), { powerState: 'running', raw: 'running', reason: 'booted' });
  t.same(parseDomState(fixture('domstate-paused.txt')), { powerState: 'paused', raw: 'paused', reason: null });
  t.same(parseDomState(fixture('domstate-paused-reason.txt')), { powerState: 'paused', raw: 'paused', reason: 'user' });
  t.same(parseDomState(fixture('domstate-shutoff.txt')), { powerState: 'off', raw: 'shut off', reason: null });
  t.same(parseDomState(fixture('domstate-shutoff-reason.txt')), { powerState: 'off', raw: 'shut off', reason: 'unknown' });
});

t.test('parseDomState: the other words virsh prints', async (t) => {
  const cases: Array<[string, string]> = [
    ['in shutdown\n\n', 'transitioning'],
    ['crashed\n\n', 'off'],
    ['pmsuspended\n\n', 'suspended'],
    ['idle\n\n', 'running'],
    ['no state\n\n', 'unknown'],
    ['crashed (panicked)\n\n', 'off'],
    ['something new\n', 'unknown'],
    ['', 'unknown'],
  ];
  for (const [text, expected] of cases) t.equal(parseDomState(text).powerState, expected, JSON.stringify(text));
  t.equal(parseDomState('in shutdown (user)\n').raw, 'in shutdown');
});

t.test('parseVirshError: one line, two lines, no prefix', async (t) => {
  t.same(parseVirshError(fixture('error-unknown-domain.stderr')), {
    message: "failed to get domain 'no-such-domain'",
    lines: ["failed to get domain 'no-such-domain'"],
  });
  t.equal(
    parseVirshError(fixture('error-unknown-snapshot.stderr')).message,
    "Domain snapshot not found: no domain snapshot with matching name 'no-such-snapshot'",
  );
  t.equal(parseVirshError(fixture('error-duplicate-name.stderr')).message, 'operation failed: domain moment base already exists');
  t.equal(parseVirshError(fixture('error-quiesce-no-channel.stderr')).message, 'argument unsupported: QEMU guest agent is not configured');
  t.equal(
    parseVirshError(fixture('error-quiesce-agent-not-running.stderr')).message,
    'Guest agent is not responding: QEMU guest agent is not connected',
  );
  t.same(parseVirshError(fixture('error-revert-external.stderr')), {
    message: 'unsupported configuration: revert to external snapshot not supported yet',
    lines: ['Failed to revert snapshot ext1', 'unsupported configuration: revert to external snapshot not supported yet'],
  });
  t.same(parseVirshError(fixture('error-delete-external-with-children.stderr')).lines, [
    'Failed to delete snapshot ext1',
    'unsupported configuration: deletion of external children disk snapshots not supported',
  ]);
  t.equal(parseVirshError(fixture('snapshot-current-none.stderr')).message, "domain 'cap-web01' has no current snapshot");
  t.same(parseVirshError('error: a\r\nerror: b\r\n'), { message: 'b', lines: ['a', 'b'] });
  t.same(parseVirshError('bash: virsh: command not found\n'), {
    message: 'bash: virsh: command not found',
    lines: ['bash: virsh: command not found'],
  });
  t.same(parseVirshError(''), { message: '', lines: [] });
});

t.test('parseNameList: trailing blank line, empty list, odd names', async (t) => {
  t.same(parseNameList(fixture('snapshot-list-name.txt')), ['  a&b <c> "d" \'e\' ', '1e3', 'base', "branch 'b' $(x);ü", 'with desc']);
  t.same(parseNameList(fixture('snapshot-list-empty.txt')), []);
  t.same(parseNameList(fixture('snapshot-list-roots.txt')), ['base']);
  t.same(parseNameList(fixture('snapshot-current-name.txt')), ["branch 'b' $(x);ü"]);
  // Other labs' domains share the libvirtd, so only the capture's own are certain.
  const domains = parseNameList(fixture('list-all-name.txt'));
  for (const name of ['cap-web01', 'cap-db01', 'cap-off01']) t.ok(domains.includes(name), name);
  t.notOk(domains.includes(''));
  t.same(parseNameList('a\n\n'), ['a']);
  t.same(parseNameList('\n'), []);
});
