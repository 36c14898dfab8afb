import t from 'tap';
import {
  formatJobError,
  formatProblem,
  printable,
  progressBar,
  progressLine,
  renderTree,
  shortTime,
  table,
  type JobJson,
  type TreeNodeJson,
} from '../../src/cli/format.ts';

function node(id: string, name: string, children: TreeNodeJson[] = [], extra: Partial<TreeNodeJson> = {}): TreeNodeJson {
  return { id, parentId: null, name, mode: 'memory', owner: 'snapvisor', state: 'present', current: false, createdAt: null, depth: 1, children, ...extra };
}

function job(extra: Partial<JobJson> = {}): JobJson {
  return {
    id: 'j1', kind: 'snapshot.create', state: 'running', progress: 42, progressMessage: 'saving memory', attempts: 1,
    result: null, error: null, vmId: 'vm1', snapshotId: null, createdAt: '2026-01-01T00:00:00.000Z',
    startedAt: null, finishedAt: null, requestedBy: 'ops', ...extra,
  };
}

t.test('renderTree draws nested branches with box-drawing characters and marks the current one', async (t) => {
  const roots = [
    node('s1', 'base', [
      node('s2', 'left', [node('s4', 'deep', [], { current: true })]),
      node('s3', 'right', [], { mode: null, owner: 'external' }),
    ], { mode: 'offline' }),
    node('s5', 'second-root'),
  ];
  t.equal(
    renderTree(roots),
    [
      'base  [offline, snapvisor]  s1',
      '├── left  [memory, snapvisor]  s2',
      '│   └── deep * (current)  [memory, snapvisor]  s4',
      '└── right  [mode?, external]  s3',
      'second-root  [memory, snapvisor]  s5',
      '',
    ].join('\n'),
  );
});

t.test('renderTree: continuation bars only under non-last siblings; gone state shown', async (t) => {
  const roots = [node('a', 'a', [node('b', 'b', [node('d', 'd')]), node('c', 'c', [node('e', 'e', [], { state: 'gone' })])])];
  t.equal(
    renderTree(roots),
    ['a  [memory, snapvisor]  a', '├── b  [memory, snapvisor]  b', '│   └── d  [memory, snapvisor]  d', '└── c  [memory, snapvisor]  c', '    └── e  [memory, snapvisor, gone]  e', ''].join('\n'),
  );
});

t.test('renderTree of nothing, and of a long linear chain', async (t) => {
  t.equal(renderTree([]), '(no snapshots)\n');
  let leaf = node('n0', 'n0');
  for (let i = 1; i < 300; i++) leaf = node(`n${i}`, `n${i}`, [leaf]);
  const lines = renderTree([leaf]).trimEnd().split('\n');
  t.equal(lines.length, 300);
  t.match(lines[2], /^    └── n297 /);
  t.ok(lines[299]!.startsWith(`${' '.repeat(4 * 298)}└── n0 `));
});

t.test('names with control characters cannot break the layout', async (t) => {
  t.equal(printable('a\nb\u001b[31mc\td'), 'a\\nb?[31mc\\td');
  t.equal(renderTree([node('x', 'evil\nname')]), 'evil\\nname  [memory, snapvisor]  x\n');
});

t.test('table pads columns to the widest cell and right-aligns numbers', async (t) => {
  const out = table([{ n: 'alpha', c: 3 }, { n: 'ß', c: 120 }], [
    { header: 'NAME', value: (r) => r.n },
    { header: 'COUNT', value: (r) => String(r.c), right: true },
  ]);
  t.equal(out, ['NAME   COUNT', 'alpha      3', 'ß        120', ''].join('\n'));
  t.equal(table([], [{ header: 'ID', value: () => '' }]), 'ID\n');
});

t.test('progressBar fills proportionally and clamps', async (t) => {
  t.equal(progressBar(0, 10), '[..........]   0%');
  t.equal(progressBar(50, 10), '[#####.....]  50%');
  t.equal(progressBar(100, 10), '[##########] 100%');
  t.equal(progressBar(250, 10), '[##########] 100%');
  t.equal(progressBar(-5, 10), '[..........]   0%');
  t.equal(progressBar(Number.NaN, 10), '[..........]   0%');
  t.equal(progressBar(33.9, 10), '[###.......]  33%');
});

t.test('progressLine: a bar for terminals, a plain line for logs', async (t) => {
  t.equal(progressLine(job(), true), `${progressBar(42)}  running  saving memory`);
  t.equal(progressLine(job(), false), 'job j1: running 42%  saving memory');
  t.equal(progressLine(job({ progressMessage: null, state: 'queued', progress: 0 }), false), 'job j1: queued 0%');
});

t.test('formatProblem prints title, detail and the failing fields', async (t) => {
  t.equal(formatProblem({ title: 'Not Found', detail: "vm 'x' not found" }, 404), "error: Not Found: vm 'x' not found\n");
  t.equal(
    formatProblem({ title: 'Bad Request', detail: 'invalid', errors: [{ path: 'body/name', message: 'is required' }] }, 400),
    'error: Bad Request: invalid\n  - body/name: is required\n',
  );
  t.equal(formatProblem({ title: 'Too Many Requests', detail: 'slow down', retryAfter: 7 }, 429), 'error: Too Many Requests: slow down\n  retry after 7 s\n');
  t.equal(formatProblem({}, 502), 'error: HTTP 502\n');
});

t.test('formatJobError names the job, its state and the error kind', async (t) => {
  t.equal(
    formatJobError(job({ state: 'failed', error: { kind: 'conflict', message: 'VM is locked', code: 'VBOX_E_INVALID_OBJECT_STATE' } })),
    'error: job j1 failed: conflict: VM is locked (VBOX_E_INVALID_OBJECT_STATE)\n',
  );
  t.equal(formatJobError(job({ state: 'cancelled', error: null })), 'error: job j1 cancelled: no error recorded\n');
});

t.test('shortTime', async (t) => {
  t.equal(shortTime('2026-03-04T05:06:07.123Z'), '2026-03-04 05:06:07');
  t.equal(shortTime(null), '-');
});
