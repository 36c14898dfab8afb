/**
 * A snapshot tree as the rows the console draws, depth-first. Snapshot trees are mostly long chains
 * (every policy run adds one level), so an only child stays in its parent's column, joined by a
 * straight line, and only a branch indents: a 180-deep chain is a straight list, not a staircase
 * 180 columns wide. Each row says what to draw in each column left of it (a line passing down, an
 * elbow into this row, or nothing), so the view draws only the columns that show something.
 * Collapsed nodes hide their subtree. Pure: no DOM, unit-tested apart from the browser.
 */
export interface TreeNodeLike<T> {
  id: string;
  children: T[];
}

/** What column c of a row shows: a line passing by, an elbow into the row (├ or └), or nothing. */
export type Column = 'none' | 'line' | 'elbow' | 'elbow-last';

export interface TreeRow<T> {
  node: T;
  /** True depth, 0 for a root (aria-level is level + 1). */
  level: number;
  /** Columns left of this row's own marker: indent = columns.length. */
  columns: Column[];
  /** An only child: the line from its parent comes straight down into it. */
  stemUp: boolean;
  /** Expanded with children: a line leaves it downwards. */
  stemDown: boolean;
  hasChildren: boolean;
  expanded: boolean;
  parentId: string | null;
  /** Position among its siblings, from 1 (aria-posinset), and their count (aria-setsize). */
  position: number;
  siblings: number;
}

interface Pending<T> {
  node: T;
  level: number;
  /** Columns for this row. */
  columns: Column[];
  /** Columns for this node's descendants below it (the elbow's column becomes a line or nothing). */
  below: Column[];
  stemUp: boolean;
  parentId: string | null;
  position: number;
  siblings: number;
}

export function treeRows<T extends TreeNodeLike<T>>(roots: readonly T[], collapsed: ReadonlySet<string>): Array<TreeRow<T>> {
  const rows: Array<TreeRow<T>> = [];
  // Iterative: a 10,000-deep chain must not overflow the stack.
  const stack: Array<Pending<T>> = [];
  for (let i = roots.length - 1; i >= 0; i--) {
    stack.push({ node: roots[i]!, level: 0, columns: [], below: [], stemUp: false, parentId: null, position: i + 1, siblings: roots.length });
  }
  while (stack.length > 0) {
    const item = stack.pop()!;
    const { node } = item;
    const n = node.children.length;
    const expanded = n > 0 && !collapsed.has(node.id);
    rows.push({
      node,
      level: item.level,
      columns: item.columns,
      stemUp: item.stemUp,
      stemDown: expanded,
      hasChildren: n > 0,
      expanded,
      parentId: item.parentId,
      position: item.position,
      siblings: item.siblings,
    });
    if (!expanded) continue;
    if (n === 1) {
      stack.push({ node: node.children[0]!, level: item.level + 1, columns: item.below, below: item.below, stemUp: true, parentId: node.id, position: 1, siblings: 1 });
      continue;
    }
    for (let i = n - 1; i >= 0; i--) {
      const last = i === n - 1;
      stack.push({
        node: node.children[i]!,
        level: item.level + 1,
        columns: [...item.below, last ? 'elbow-last' : 'elbow'],
        below: [...item.below, last ? 'none' : 'line'],
        stemUp: false,
        parentId: node.id,
        position: i + 1,
        siblings: n,
      });
    }
  }
  return rows;
}

/** Every node of the tree, depth-first (for lookups by id). */
export function allNodes<T extends TreeNodeLike<T>>(roots: readonly T[]): T[] {
  const out: T[] = [];
  const stack = [...roots].reverse();
  while (stack.length > 0) {
    const node = stack.pop()!;
    out.push(node);
    for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]!);
  }
  return out;
}
