/**
 * Cursor paging as the API gives it (`next` on each page): the cursors of the pages already seen
 * are kept, so "Previous page" needs no reverse paging from the API, and nothing but one page is
 * ever loaded.
 */
import { useState } from 'preact/hooks';

export interface Pages {
  /** The cursor of the page shown (undefined: the first). */
  cursor: string | undefined;
  firstPage: boolean;
  /** Back to the first page (a filter changed). */
  reset: () => void;
  next: (cursor: string) => void;
  previous: () => void;
  number: number;
}

export function usePages(): Pages {
  const [cursors, setCursors] = useState<string[]>([]);
  return {
    cursor: cursors[cursors.length - 1],
    firstPage: cursors.length === 0,
    reset: () => setCursors([]),
    next: (cursor) => setCursors((c) => [...c, cursor]),
    previous: () => setCursors((c) => c.slice(0, -1)),
    number: cursors.length + 1,
  };
}

export function Pager({ pages, next }: { pages: Pages; next: string | null | undefined }) {
  return (
    <div class="pager">
      <button type="button" disabled={pages.firstPage} onClick={pages.reset}>First page</button>
      <button type="button" disabled={pages.firstPage} onClick={pages.previous}>Previous page</button>
      <button type="button" disabled={!next} onClick={() => next && pages.next(next)}>Next page</button>
      <span class="muted">Page {pages.number}</span>
    </div>
  );
}
