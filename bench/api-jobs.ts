/**
 * What the benchmarks that drive the real daemon share: the job body `?wait=` answers, the tree
 * view's nodes, and the small helpers to check and time them.
 */
export interface JobBody {
  id: string;
  state: string;
  result: { snapshotId?: string } | null;
  error: unknown;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface TreeNode {
  name: string;
  children: TreeNode[];
}

export const ms = (since: number): number => performance.now() - since;
export const countNodes = (nodes: readonly TreeNode[]): number => nodes.reduce((n, c) => n + 1 + countNodes(c.children), 0);
export const verdict = (ok: boolean): string => (ok ? 'met' : '**NOT met**');

/** A job answered with ?wait=: must be final and succeeded; returns the job. */
export function finished(what: string, res: { status: number; body: JobBody }): JobBody {
  if (res.status !== 200 || res.body.state !== 'succeeded') throw new Error(`${what}: HTTP ${res.status}, job ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Milliseconds between two of a job's timestamps (NaN when one is missing). */
export const span = (from: string | null, to: string | null): number => (from && to ? Date.parse(to) - Date.parse(from) : NaN);
