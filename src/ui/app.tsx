/**
 * The console's frame: sign-in gate, header with the main navigation, and the view the hash names.
 * Each view is one module under views/ and one line in VIEWS.
 */
import type { ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.ts';
import { live, type LiveStatus } from './events.ts';
import { href, useRoute, type Route } from './router.ts';
import { session } from './session.ts';
import type { Whoami } from './types.ts';
import { GroupView, GroupsView } from './views/groups.tsx';
import { JobView, JobsView } from './views/jobs.tsx';
import { PoliciesView, PolicyView } from './views/policies.tsx';
import { SignIn } from './views/sign-in.tsx';
import { TargetsView } from './views/targets.tsx';
import { VmView } from './views/vm.tsx';
import { VmsView } from './views/vms.tsx';

export interface ViewProps {
  route: Route;
  /** The path segment after the section, e.g. the VM id in #/vms/<id>. */
  id: string | undefined;
}

const SECTIONS: Array<{ key: string; label: string; list: ComponentType<ViewProps>; one?: ComponentType<ViewProps> }> = [
  { key: 'targets', label: 'Targets', list: TargetsView },
  { key: 'vms', label: 'VMs', list: VmsView, one: VmView },
  { key: 'jobs', label: 'Jobs', list: JobsView, one: JobView },
  { key: 'policies', label: 'Policies', list: PoliciesView, one: PolicyView },
  { key: 'groups', label: 'Groups', list: GroupsView, one: GroupView },
];

function useSession(): Whoami | null {
  const [who, setWho] = useState(session.who());
  // Read again on subscribing: a change between the first render and this effect would be missed.
  useEffect(() => {
    setWho(session.who());
    return session.subscribe(() => setWho(session.who()));
  }, []);
  return who;
}

function useLiveStatus(): LiveStatus {
  const [status, setStatus] = useState(live.status());
  useEffect(() => {
    setStatus(live.status());
    return live.onStatus(setStatus);
  }, []);
  return status;
}

export function App() {
  const who = useSession();
  const route = useRoute();
  const [restoring, setRestoring] = useState(() => session.token() !== null && session.who() === null);

  // A reload keeps the tab's token: ask who it is before showing anything.
  useEffect(() => {
    if (!restoring) return;
    api.get<Whoami>('/v1/whoami').then(
      (identity) => session.restored(identity),
      () => session.signOut(session.signOutReason() ?? 'Your session could not be restored; sign in again.'),
    ).finally(() => setRestoring(false));
  }, [restoring]);

  useEffect(() => {
    if (who === null) return;
    live.start();
    return () => live.stop();
  }, [who]);

  useEffect(() => {
    const section = SECTIONS.find((s) => s.key === route.parts[0]);
    document.title = section ? `${section.label} · Snapvisor` : 'Snapvisor';
  }, [route]);

  if (restoring) return <p class="loading" aria-live="polite">Loading…</p>;
  if (who === null) return <SignIn />;

  const section = SECTIONS.find((s) => s.key === route.parts[0]) ?? SECTIONS[1]!;
  const id = route.parts[1];
  const View = id !== undefined && section.one ? section.one : section.list;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <Header who={who} current={section.key} />
      <main id="main" tabIndex={-1}>
        <View route={route} id={id} key={`${section.key}/${id ?? ''}`} />
      </main>
    </>
  );
}

function Header({ who, current }: { who: Whoami; current: string }) {
  const status = useLiveStatus();
  return (
    <header class="top">
      <span class="brand">Snapvisor</span>
      <nav aria-label="Main">
        <ul>
          {SECTIONS.map((s) => (
            <li key={s.key}>
              <a href={href([s.key])} aria-current={s.key === current ? 'page' : undefined}>{s.label}</a>
            </li>
          ))}
        </ul>
      </nav>
      <span class="who">
        <span class={`live live-${status}`} title={status === 'live' ? 'Live updates on' : 'Live updates reconnecting'}>
          {status === 'live' ? 'live' : status}
        </span>
        <span>Signed in as {who.name}</span>
        <span class="muted">({who.scopes.join(', ')})</span>
        <button type="button" onClick={() => session.signOut()}>Sign out</button>
      </span>
    </header>
  );
}
