/**
 * A VM's snapshots drawn as a tree (WAI-ARIA tree pattern): one tab stop, arrow keys to move,
 * Right/Left to open, close or go to the parent, Home/End, Enter or Space to select. Guide lines
 * show parentage; the current snapshot is marked in words, not by colour alone.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { treeRows } from '../tree-rows.ts';
import type { SnapshotNode } from '../types.ts';
import { LocalTime } from './time.tsx';

export function ownerOf(s: { owner: string; policyId: string | null }): string {
  if (s.policyId !== null) return 'policy';
  return s.owner;
}

export function SnapshotTree({ roots, selected, onSelect }: { roots: SnapshotNode[]; selected: string | null; onSelect: (id: string) => void }) {
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(new Set());
  const rows = useMemo(() => treeRows(roots, collapsed), [roots, collapsed]);
  const [focused, setFocused] = useState<string | null>(null);
  const refs = useRef(new Map<string, HTMLLIElement>());
  const focusIndex = Math.max(0, rows.findIndex((r) => r.node.id === (focused ?? selected)));

  useEffect(() => {
    if (focused !== null) refs.current.get(focused)?.focus();
  }, [focused]);

  const toggle = (id: string, open: boolean) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (open) next.delete(id);
      else next.add(id);
      return next;
    });

  const onKeyDown = (e: KeyboardEvent) => {
    const row = rows[focusIndex];
    if (!row) return;
    const go = (i: number) => {
      const target = rows[Math.min(rows.length - 1, Math.max(0, i))];
      if (target) setFocused(target.node.id);
    };
    switch (e.key) {
      case 'ArrowDown': go(focusIndex + 1); break;
      case 'ArrowUp': go(focusIndex - 1); break;
      case 'Home': go(0); break;
      case 'End': go(rows.length - 1); break;
      case 'ArrowRight':
        if (row.hasChildren && !row.expanded) toggle(row.node.id, true);
        else if (row.expanded) go(focusIndex + 1);
        break;
      case 'ArrowLeft':
        if (row.expanded) toggle(row.node.id, false);
        else if (row.parentId !== null) setFocused(row.parentId);
        break;
      case 'Enter':
      case ' ':
        onSelect(row.node.id);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  if (rows.length === 0) return <p class="muted">No snapshots.</p>;
  return (
    <ul role="tree" aria-label="Snapshot tree" class="tree" onKeyDown={onKeyDown}>
      {rows.map((row, i) => {
        const s = row.node;
        return (
          <li
            key={s.id}
            ref={(el) => { if (el) refs.current.set(s.id, el); else refs.current.delete(s.id); }}
            role="treeitem"
            aria-level={row.level + 1}
            aria-posinset={row.position}
            aria-setsize={row.siblings}
            aria-selected={s.id === selected}
            aria-expanded={row.hasChildren ? row.expanded : undefined}
            data-current={s.current ? 'true' : undefined}
            tabIndex={i === focusIndex ? 0 : -1}
            class={`node${s.id === selected ? ' selected' : ''}${s.current ? ' current' : ''}`}
            onClick={() => { setFocused(s.id); onSelect(s.id); }}
            onFocus={() => setFocused(s.id)}
          >
            <span class="indent" aria-hidden="true" style={{ '--cols': row.columns.length }}>
              {row.columns.map((column, c) => (column === 'none' ? null : <span key={c} class={`col ${column}`} style={{ '--col': c }} />))}
            </span>
            <span
              class={`twisty${row.stemUp ? ' up' : ''}${row.stemDown ? ' down' : ''}`}
              aria-hidden="true"
              onClick={row.hasChildren ? (e) => { e.stopPropagation(); toggle(s.id, !row.expanded); } : undefined}
            >
              {row.hasChildren ? (row.expanded ? '▾' : '▸') : '•'}
            </span>
            <bdi class="name">{s.name}</bdi>
            {s.current && <span class="badge current-badge">current</span>}
            {s.mode !== null && <span class="badge mode">{s.mode}</span>}
            <span class={`badge owner owner-${ownerOf(s)}`}>{ownerOf(s)}</span>
            {!s.ready && <span class="badge warn">copying{s.progress !== null ? ` ${s.progress} %` : ''}</span>}
            <span class="when"><LocalTime iso={s.createdAt ?? s.firstSeenAt} /></span>
          </li>
        );
      })}
    </ul>
  );
}
