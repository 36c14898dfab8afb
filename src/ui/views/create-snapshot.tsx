/**
 * The create form: modes the target lacks are listed but disabled, with the provider's reason, so
 * nobody picks one and learns from a 422. One Idempotency-Key per opened dialog: a double click or
 * a retried submit makes one snapshot.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, seg } from '../api.ts';
import { ProblemBanner } from '../components/problem.tsx';
import { SNAPSHOT_MODES, type Capabilities, type Job, type SnapshotMode, type Vm } from '../types.ts';

export function CreateSnapshotDialog({ vm, capabilities, onClose, onStarted }: {
  vm: Vm;
  capabilities: Capabilities;
  onClose: () => void;
  onStarted: (job: Job) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [key] = useState(() => crypto.randomUUID());
  const firstSupported = SNAPSHOT_MODES.find((m) => capabilities.modes[m].supported) ?? 'crash';
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [mode, setMode] = useState<SnapshotMode>(firstSupported);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (ref.current && !ref.current.open) ref.current.showModal();
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const body = { name, mode, ...(description !== '' ? { description } : {}) };
      onStarted(await api.post<Job>(`/v1/vms/${seg(vm.id)}/snapshots`, body, { 'idempotency-key': key }));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const unsupported = SNAPSHOT_MODES.filter((m) => !capabilities.modes[m].supported);
  return (
    <dialog ref={ref} aria-labelledby="create-title" onCancel={(e) => { e.preventDefault(); onClose(); }}>
      <form onSubmit={submit}>
        <h2 id="create-title">Create snapshot</h2>
        <p class="muted">of {vm.name}</p>
        <label for="snap-name">Name</label>
        <input id="snap-name" required maxLength={255} value={name} onInput={(e) => setName(e.currentTarget.value)} autoComplete="off" />
        {capabilities.descriptions && (
          <>
            <label for="snap-description">Description</label>
            <textarea id="snap-description" maxLength={4096} rows={3} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
          </>
        )}
        <label for="snap-mode">Mode</label>
        <select id="snap-mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as SnapshotMode)} aria-describedby={unsupported.length > 0 ? 'mode-help' : undefined}>
          {SNAPSHOT_MODES.map((m) => {
            const support = capabilities.modes[m];
            return <option key={m} value={m} disabled={!support.supported}>{support.supported ? m : `${m} (unsupported)`}</option>;
          })}
        </select>
        {unsupported.length > 0 && (
          <ul id="mode-help" class="muted small">
            {unsupported.map((m) => {
              const support = capabilities.modes[m];
              return <li key={m}>{m}: {support.supported ? '' : support.reason}</li>;
            })}
          </ul>
        )}
        <ProblemBanner error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>Create</button>
        </div>
      </form>
    </dialog>
  );
}
