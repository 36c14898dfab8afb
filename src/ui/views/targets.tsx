import { api } from '../api.ts';
import { ProblemBanner } from '../components/problem.tsx';
import { LocalTime } from '../components/time.tsx';
import { useResource } from '../components/use-resource.ts';
import { href } from '../router.ts';
import { SNAPSHOT_MODES, type Target } from '../types.ts';

export function TargetsView() {
  const targets = useResource(() => api.get<{ items: Target[] }>('/v1/targets'), []);
  return (
    <>
      <h1>Targets</h1>
      <ProblemBanner error={targets.error} />
      {targets.data?.items.length === 0 && <p>No targets are configured.</p>}
      <div class="cards">
        {targets.data?.items.map((t) => <TargetCard key={t.name} target={t} />)}
      </div>
    </>
  );
}

function TargetCard({ target: t }: { target: Target }) {
  const headingId = `target-${t.name}`;
  const features: Array<[string, boolean]> = [
    ['Revert', t.capabilities.revert],
    ['Delete with children', t.capabilities.deleteChildren],
    ['Delete all', t.capabilities.deleteAll],
    ['Consolidate', t.capabilities.consolidate],
    ['Descriptions', t.capabilities.descriptions],
  ];
  return (
    <section class="card" aria-labelledby={headingId}>
      <h2 id={headingId}>{t.name}</h2>
      <p>
        <span class="kind">{t.kind}</span>
        {t.demo && <span class="badge">demo</span>}{' '}
        <span class={t.health.reachable ? 'ok' : 'bad'}>{t.health.reachable ? 'reachable' : 'unreachable'}</span>
        {t.health.version ? <span class="muted"> · {t.health.version}</span> : null}
      </p>
      {t.health.message ? <p class="muted">{t.health.message}</p> : null}
      <p class="muted">
        Checked <LocalTime iso={t.health.checkedAt} /> · <a href={href(['vms'], { target: t.name })}>{t.vmCount} VMs</a>
      </p>
      <table>
        <caption>Capabilities</caption>
        <thead>
          <tr><th scope="col">Mode</th><th scope="col">Support</th></tr>
        </thead>
        <tbody>
          {SNAPSHOT_MODES.map((mode) => {
            const m = t.capabilities.modes[mode];
            return (
              <tr key={mode} class={m.supported ? '' : 'unsupported'}>
                <th scope="row">{mode}</th>
                <td>{m.supported ? (m.revertRefused ? `supported; cannot revert: ${m.revertRefused}` : 'supported') : <>unsupported: <span>{m.reason}</span></>}</td>
              </tr>
            );
          })}
          {features.map(([label, on]) => (
            <tr key={label} class={on ? '' : 'unsupported'}>
              <th scope="row">{label}</th>
              <td>{on ? 'supported' : 'unsupported'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
