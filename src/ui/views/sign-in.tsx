import { useState } from 'preact/hooks';
import { ApiError, explain, request } from '../api.ts';
import { session } from '../session.ts';
import type { Whoami } from '../types.ts';

export function SignIn() {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(session.signOutReason());
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const value = token.trim();
    if (value === '') return;
    setBusy(true);
    try {
      const who = await request<Whoami>('GET', '/v1/whoami', undefined, value);
      setToken('');
      session.signedIn(value, who);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'This token was not accepted (401): check that it is a token this daemon knows.' : explain(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="sign-in">
      <h1>Snapvisor</h1>
      <p>Sign in with an API token. It is kept in this browser tab only and forgotten when the tab closes.</p>
      <form onSubmit={submit}>
        <label for="token">API token</label>
        <input id="token" type="password" autoComplete="off" spellcheck={false} required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        <button type="submit" class="primary" disabled={busy}>Sign in</button>
      </form>
      {error !== null && <p role="alert" class="problem">{error}</p>}
    </main>
  );
}
