import { randomBytes } from 'node:crypto';
import type { Queryable } from './database.js';
import { hashSecret } from '../access/credentials.js';
import type { Role } from '../access/roles.js';


export interface Session { username: string; role: Role; name: string; csrfToken: string }

/**
 * Workbench sign-in sessions. The cookie holds a random secret; only its sha256 is stored, so a
 * copy of the database does not let anyone sign in. Each session has its own CSRF token.
 */
export async function createSession(db: Queryable, username: string, lifetimeSeconds: number): Promise<{ cookieValue: string; csrfToken: string }> {
  const secret = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
  await db.query(
    `INSERT INTO sessions (token_hash, username, csrf_token, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
    [hashSecret(secret), username, csrfToken, lifetimeSeconds],
  );
  // Expired sessions are removed as new ones are made: no separate cleaner needed.
  await db.query('DELETE FROM sessions WHERE expires_at < now()');
  return { cookieValue: secret, csrfToken };
}

export async function findSession(db: Queryable, cookieValue: string): Promise<Session | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(cookieValue)) return null;
  const r = await db.query<{ username: string; role: Role; name: string; csrf_token: string }>(
    `SELECT u.username, u.role, coalesce(u.full_name, u.username) AS name, s.csrf_token
     FROM sessions s JOIN users u USING (username) WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL`,
    [hashSecret(cookieValue)],
  );
  const row = r.rows[0];
  return row ? { username: row.username, role: row.role, name: row.name, csrfToken: row.csrf_token } : null;
}

export async function endSession(db: Queryable, cookieValue: string): Promise<void> {
  await db.query('DELETE FROM sessions WHERE token_hash = $1', [hashSecret(cookieValue)]);
}
