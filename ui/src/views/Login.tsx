// Sign-in page: username and password; the server sets the session cookie.

import { useState } from 'preact/hooks';
import { ApiError, errorMessage, signIn } from '../api';
import type { Session } from '../types';

export function LoginView(props: { onSignedIn: (s: Session) => void; signedInAs: Session | null }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      const s = await signIn(username.trim(), password);
      props.onSignedIn(s);
    } catch (err) {
      setPassword('');
      if (err instanceof ApiError && err.code === 'invalid_credentials') setError('The username or password is not correct.');
      else if (err instanceof ApiError && err.status === 429) setError(`Too many sign-in attempts. ${err.message}`);
      else setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="login card" onSubmit={submit} aria-labelledby="login-title">
      <h1 id="login-title">
        <span class="brand">visq</span> workbench
      </h1>
      {props.signedInAs ? (
        <p class="muted">
          Signed in as {props.signedInAs.name}. <a href="#/queue">Back to the queue</a>
        </p>
      ) : null}
      <label for="login-username">Username</label>
      <input
        id="login-username"
        name="username"
        autoComplete="username"
        autoFocus
        required
        value={username}
        onInput={(e) => setUsername(e.currentTarget.value)}
      />
      <label for="login-password">Password</label>
      <input
        id="login-password"
        name="password"
        type="password"
        autoComplete="current-password"
        required
        value={password}
        onInput={(e) => setPassword(e.currentTarget.value)}
      />
      {error ? (
        <p class="error" role="alert" data-testid="login-error">
          {error}
        </p>
      ) : null}
      <button type="submit" class="primary" disabled={busy}>
        Sign in
      </button>
    </form>
  );
}
