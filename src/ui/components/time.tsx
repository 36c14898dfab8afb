/** A time in the browser's own zone, with UTC on hover (and for screen readers, in the title). */
export function LocalTime({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  const d = new Date(iso);
  return (
    <time dateTime={iso} title={`${d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}`}>
      {d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' })}
    </time>
  );
}
