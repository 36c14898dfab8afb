/**
 * Pure text formatting for the CLI: tables, the snapshot tree, the progress bar, problems.
 * No I/O here; unit-tested in test/unit/cli-format.test.ts. Types are the REST API's JSON shapes
 * as the CLI reads them (a thin client: it does not import the daemon's modules).
 */

export interface SnapshotJson {
  id: string;
  parentId: string | null;
  name: string;
  mode: string | null;
  owner: string;
  state: string;
  current: boolean;
  createdAt: string | null;
}

export interface TreeNodeJson extends SnapshotJson {
  depth: number;
  children: TreeNodeJson[];
}

export interface JobJson {
  id: string;
  kind: string;
  state: string;
  progress: number;
  progressMessage: string | null;
  attempts: number;
  result: { snapshotId?: string; snapshotIds?: string[]; message?: string } | null;
  error: { kind: string; message: string; code?: string } | null;
  vmId: string;
  snapshotId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  requestedBy: string;
}

export interface ProblemJson {
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: Array<{ path: string; message: string }>;
  retryAfter?: number;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Right-align (numbers). */
  right?: boolean;
}

/** Display width of a string: counts code points, so box-drawing and accents take one column. */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, size: number, right = false): string {
  const fill = ' '.repeat(Math.max(0, size - width(text)));
  return right ? fill + text : text + fill;
}

/** Control characters (a name with a newline or an escape sequence) must not reshape the terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : '?'));
}

export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => printable(c.value(row))));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((r) => width(r[i] ?? ''))));
  const line = (values: string[]) =>
    values
      .map((v, i) => pad(v, widths[i] ?? 0, columns[i]?.right))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

function snapshotLabel(node: SnapshotJson): string {
  const tags = [node.mode ?? 'mode?', node.owner];
  if (node.state !== 'present') tags.push(node.state);
  const current = node.current ? ' * (current)' : '';
  return `${printable(node.name)}${current}  [${tags.join(', ')}]  ${node.id}`;
}

/**
 * Draws a snapshot forest with box-drawing characters:
 *
 *   base  [offline, snapvisor]  id
 *   ├── before-upgrade * (current)  [memory, snapvisor]  id
 *   └── external-one  [mode?, external]  id
 */
export function renderTree(roots: readonly TreeNodeJson[]): string {
  if (roots.length === 0) return '(no snapshots)\n';
  const lines: string[] = [];
  // Iterative, so a very deep chain cannot overflow the stack.
  const stack: Array<{ node: TreeNodeJson; prefix: string; connector: string }> = [];
  for (let i = roots.length - 1; i >= 0; i--) stack.push({ node: roots[i]!, prefix: '', connector: '' });
  while (stack.length > 0) {
    const { node, prefix, connector } = stack.pop()!;
    lines.push(`${prefix}${connector}${snapshotLabel(node)}`);
    const childPrefix = connector === '' ? prefix : prefix + (connector === '└── ' ? '    ' : '│   ');
    for (let i = node.children.length - 1; i >= 0; i--) {
      const last = i === node.children.length - 1;
      stack.push({ node: node.children[i]!, prefix: childPrefix, connector: last ? '└── ' : '├── ' });
    }
  }
  return lines.join('\n') + '\n';
}

/** `[##########..........]  50%`; percent is clamped to 0..100. */
export function progressBar(percent: number, size = 30): string {
  const pct = Math.max(0, Math.min(100, Number.isFinite(percent) ? percent : 0));
  const filled = Math.round((pct / 100) * size);
  return `[${'#'.repeat(filled)}${'.'.repeat(size - filled)}] ${pad(String(Math.floor(pct)), 3, true)}%`;
}

/** One progress line for a job: the bar, its state and its message. */
export function progressLine(job: JobJson, tty: boolean): string {
  const message = job.progressMessage ? `  ${printable(job.progressMessage)}` : '';
  if (tty) return `${progressBar(job.progress)}  ${job.state}${message}`;
  return `job ${job.id}: ${job.state} ${Math.floor(job.progress)}%${message}`;
}

export function formatProblem(problem: ProblemJson, status: number): string {
  const title = problem.title ?? `HTTP ${status}`;
  const lines = [`error: ${title}: ${printable(problem.detail ?? '')}`.replace(/: $/, '')];
  for (const e of problem.errors ?? []) lines.push(`  - ${printable(e.path)}: ${printable(e.message)}`);
  if (problem.retryAfter !== undefined) lines.push(`  retry after ${problem.retryAfter} s`);
  return lines.join('\n') + '\n';
}

export function formatJobError(job: JobJson): string {
  const err = job.error;
  const reason = err ? `${err.kind}: ${printable(err.message)}${err.code ? ` (${err.code})` : ''}` : 'no error recorded';
  return `error: job ${job.id} ${job.state}: ${reason}\n`;
}

/** `key: value` lines, keys aligned. */
export function keyValues(entries: ReadonlyArray<[string, string]>): string {
  const size = Math.max(0, ...entries.map(([k]) => width(k)));
  return entries.map(([k, v]) => `${pad(`${k}:`, size + 1)} ${printable(v)}`).join('\n') + '\n';
}

export function formatJob(job: JobJson): string {
  const entries: Array<[string, string]> = [
    ['id', job.id],
    ['kind', job.kind],
    ['state', job.state],
    ['progress', `${Math.floor(job.progress)}%${job.progressMessage ? ` (${job.progressMessage})` : ''}`],
    ['attempts', String(job.attempts)],
    ['vm', job.vmId],
    ['snapshot', job.snapshotId ?? '-'],
    ['requested by', job.requestedBy],
    ['created', job.createdAt],
    ['started', job.startedAt ?? '-'],
    ['finished', job.finishedAt ?? '-'],
  ];
  if (job.result?.snapshotId) entries.push(['result snapshot', job.result.snapshotId]);
  if (job.result?.message) entries.push(['result', job.result.message]);
  if (job.error) entries.push(['error', `${job.error.kind}: ${job.error.message}${job.error.code ? ` (${job.error.code})` : ''}`]);
  return keyValues(entries);
}

/** Short local form of an ISO time for tables; '-' for none. */
export function shortTime(iso: string | null): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '');
}
