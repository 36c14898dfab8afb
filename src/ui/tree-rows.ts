/**
 * A snapshot tree as the rows the console draws: depth-first, each row knowing which ancestor
 * levels still have siblings below (where a vertical guide line continues) and whether it is its
 * parent's last child (└ rather than ├). Collapsed nodes hide their subtree. Pure: no DOM, so it is
 * unit-tested apart from the browser.
 */
export interface TreeNodeLike<T> {
  id: string;
  children: T[];
}

export interface TreeRow<T> {
  node: T;
  /** 0 for a root. */
  level: number;
  /** For each ancestor level 0..level-1: whether a guide line continues down through this row. */
  guides: boolean[];
  last: boolean;
  hasChildren: boolean;
  expanded: boolean;
  parentId: string | null;
  /** Position among its siblings, from 1 (aria-posinset), and their count (aria-setsize). */
  position: number;
  siblings: number;
}

export function treeRows<T extends TreeNodeLike<T>>(roots: readonly T[], collapsed: ReadonlySet<string>): Array<TreeRow<T>> {
  const rows: Array<TreeRow<T>> = [];
  // Iterative: a 10,000-deep chain must not overflow the stack.
  const stack: Array<{ node: T; level: number; guides: boolean[]; last: boolean; parentId: string | null; position: number; siblings: number }> = [];
  for (let i = roots.length - 1; i >= 0; i--) {
    stack.push({ node: roots[i]!, level: 0, guides: [], last: i === roots.length - 1, parentId: null, position: i + 1, siblings: roots.length });
  }
  while (stack.length > 0) {
    const item = stack.pop()!;
    const { node } = item;
    const hasChildren = node.children.length > 0;
    const expanded = hasChildren && !collapsed.has(node.id);
    rows.push({ node, level: item.level, guides: item.guides, last: item.last, hasChildren, expanded, parentId: item.parentId, position: item.position, siblings: item.siblings });
    if (!expanded) continue;
    const guides = [...item.guides, !item.last];
    const n = node.children.length;
    for (let i = n - 1; i >= 0; i--) {
      stack.push({ node: node.children[i]!, level: item.level + 1, guides, last: i === n - 1, parentId: node.id, position: i + 1, siblings: n });
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
