// Credentials: people (admins) and camera stations (engineers and admins). Every change goes to the
// audit trail, with who made it; a new token or station key is shown once, here, and never again.

import { useEffect, useState } from 'preact/hooks';
import { del, enc, errorMessage, get, patch, post } from '../api';
import { ErrorText, Loading } from '../components/common';
import { formatTime } from '../format';
import type { Role } from '../types';

interface Account { username: string; role: Role; name: string; integration: boolean; disabled: boolean; passwordSet: boolean; tokenExpiresAt: string | null }
interface Station { stationId: string; site: string; line: string; disabled: boolean }
const ROLES: Role[] = ['reviewer', 'engineer', 'admin'];

export function AccountsView(props: { role: Role; me: string }) {
  const admin = props.role === 'admin';
  const [users, setUsers] = useState<Account[] | null>(null);
  const [stations, setStations] = useState<Station[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // A secret just issued: shown once, until dismissed.
  const [issued, setIssued] = useState<{ what: string; secret: string } | null>(null);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      try {
        if (admin) setUsers((await get<{ users: Account[] }>('/v1/users', { signal: ctl.signal })).users);
        setStations((await get<{ stations: Station[] }>('/v1/stations', { signal: ctl.signal })).stations);
        setError(null);
      } catch (err) {
        if ((err as Error).name !== 'AbortError') setError(errorMessage(err));
      }
    })();
    return () => ctl.abort();
  }, [version, admin]);

  /** Runs a change, shows its error or refreshes the lists. */
  const act = async (change: () => Promise<void>) => {
    try {
      await change();
      setError(null);
      setVersion((v) => v + 1);
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  return (
    <div>
      <div class="view-head">
        <h1>Accounts</h1>
      </div>
      <ErrorText error={error} />
      {issued ? (
        <div class="notice" role="status" data-testid="issued-secret">
          <p>
            {issued.what} — copy it now, it is not shown again:
          </p>
          <code class="mono" data-testid="issued-value">{issued.secret}</code>
          <button type="button" onClick={() => setIssued(null)}>
            Done
          </button>
        </div>
      ) : null}

      {admin ? (
        <section aria-label="People">
          <h2>People</h2>
          {!users ? <Loading what="accounts" /> : (
            <table class="grid" data-testid="users-table">
              <thead>
                <tr><th>User</th><th>Name</th><th>Role</th><th>Kind</th><th>API token</th><th>State</th><th /></tr>
              </thead>
              <tbody>
                {users.map((u) => (
                  <tr key={u.username} data-testid="user-row" data-username={u.username} class={u.disabled ? 'muted' : undefined}>
                    <td class="mono">{u.username}</td>
                    <td>{u.name}</td>
                    <td>
                      <select
                        aria-label={`Role of ${u.username}`}
                        value={u.role}
                        disabled={u.username === props.me}
                        onChange={(e) => {
                          const role = e.currentTarget.value;
                          void act(() => patch(`/v1/users/${enc(u.username)}`, { role }));
                        }}
                      >
                        {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                      </select>
                    </td>
                    <td>{u.integration ? 'integration' : u.passwordSet ? 'person' : 'person (no password)'}</td>
                    <td>{u.tokenExpiresAt ? `expires ${formatTime(u.tokenExpiresAt)}` : <span class="muted">none</span>}</td>
                    <td>{u.disabled ? 'disabled' : 'active'}</td>
                    <td class="actions">
                      <button type="button" onClick={() => act(async () => {
                        const t = await post<{ token: string }>(`/v1/users/${enc(u.username)}/token`, {});
                        setIssued({ what: `New API token of ${u.username}`, secret: t.token });
                      })}>
                        New token
                      </button>
                      {u.tokenExpiresAt ? (
                        <button type="button" onClick={() => act(() => del(`/v1/users/${enc(u.username)}/token`))}>
                          Revoke token
                        </button>
                      ) : null}
                      {u.username !== props.me ? (
                        <button type="button" data-testid={`toggle-user-${u.username}`} onClick={() => act(() => patch(`/v1/users/${enc(u.username)}`, { disabled: !u.disabled }))}>
                          {u.disabled ? 'Enable' : 'Disable'}
                        </button>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
      ) : null}

      <section aria-label="Stations">
        <h2>Camera stations</h2>
        {!stations ? <Loading what="stations" /> : (
          <table class="grid" data-testid="stations-table">
            <thead>
              <tr><th>Station</th><th>Site</th><th>Line</th><th>State</th><th /></tr>
            </thead>
            <tbody>
              {stations.map((s) => (
                <tr key={s.stationId} data-testid="station-row" data-station={s.stationId} class={s.disabled ? 'muted' : undefined}>
                  <td class="mono">{s.stationId}</td>
                  <td>{s.site}</td>
                  <td>{s.line}</td>
                  <td>{s.disabled ? 'disabled' : 'active'}</td>
                  <td class="actions">
                    <button type="button" data-testid={`rotate-${s.stationId}`} onClick={() => act(async () => {
                      const k = await post<{ apiKey: string }>(`/v1/stations/${enc(s.stationId)}/key`, {});
                      setIssued({ what: `New API key of station ${s.stationId}`, secret: k.apiKey });
                    })}>
                      New key
                    </button>
                    <button type="button" onClick={() => act(() => patch(`/v1/stations/${enc(s.stationId)}`, { disabled: !s.disabled }))}>
                      {s.disabled ? 'Enable' : 'Disable'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </div>
  );
}
