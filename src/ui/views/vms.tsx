/**
 * VMs across all targets, one page at a time (the API's cursor paging: 10,000 VMs are never loaded
 * at once), searched by name prefix, filtered by target. Rows follow the live stream.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, query } from '../api.ts';
import type { ViewProps } from '../app.tsx';
import { Pager, usePages } from '../components/pager.tsx';
import { ProblemBanner } from '../components/problem.tsx';
import { useResource } from '../components/use-resource.ts';
import { live } from '../events.ts';
import { href, navigate } from '../router.ts';
import type { Page, Target, Vm } from '../types.ts';

const PAGE_SIZE = 100;

export function VmsView({ route }: ViewProps) {
  const name = route.params.get('name') ?? '';
  const target = route.params.get('target') ?? '';
  const pages = usePages();
  const { cursor } = pages;
  const [typed, setTyped] = useState(name);
  const page = useResource(
    () => api.get<Page<Vm>>(`/v1/vms${query({ name, target, limit: PAGE_SIZE, cursor })}`),
    [name, target, cursor],
  );
  const targets = useResource(() => api.get<{ items: Target[] }>('/v1/targets'), []);
  const [rows, setRows] = useState<Vm[]>([]);
  useEffect(() => setRows(page.data?.items ?? []), [page.data]);
  useEffect(() => live.subscribe((e) => {
    if (e.type === 'vm') setRows((current) => current.map((vm) => (vm.id === e.vm.id ? { ...vm, ...e.vm } : vm)));
  }), []);

  // The search follows typing, a moment after it stops, and lives in the URL so it survives a reload.
  useEffect(() => {
    if (typed === name) return;
    const timer = setTimeout(() => {
      pages.reset();
      navigate(href(['vms'], { name: typed, target }), true);
    }, 250);
    return () => clearTimeout(timer);
  }, [typed]);

  return (
    <>
      <h1>VMs</h1>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Name starts with
          <input type="search" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" spellcheck={false} />
        </label>
        <label>
          Target
          <select value={target} onChange={(e) => { pages.reset(); navigate(href(['vms'], { name, target: e.currentTarget.value }), true); }}>
            <option value="">All targets</option>
            {targets.data?.items.map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
          </select>
        </label>
      </form>
      <ProblemBanner error={page.error} />
      <div class="table-wrap">
        <table class="vms" aria-busy={page.loading}>
          <caption>VMs</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Target</th>
              <th scope="col">Power</th>
              <th scope="col" class="num">Snapshots</th>
              <th scope="col" class="num">Chain depth</th>
              <th scope="col">Consolidation</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((vm) => (
              <tr key={vm.id}>
                <td><a href={href(['vms', vm.id])}><bdi>{vm.name}</bdi></a></td>
                <td>{vm.targetName}</td>
                <td><span class={`power power-${vm.powerState}`}>{vm.powerState}</span></td>
                <td class="num">{vm.snapshotCount}</td>
                <td class="num">{vm.chainDepth}</td>
                <td>{vm.consolidationNeeded ? <span class="warn">needed</span> : <span class="muted">no</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page.data && rows.length === 0 && <p>No VMs{name ? ` whose name starts with “${name}”` : ''}.</p>}
      <Pager pages={pages} next={page.data?.next} />
    </>
  );
}
