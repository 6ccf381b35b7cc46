import { credentialDigest, issueCredential, parseBearer, secretMatches } from '../access/credentials.js';
import type { Principal, Role } from '../access/roles.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { appendAudit } from './audit-trail.js';
import { inTransaction, type Database, type Queryable, type Transaction } from './database.js';

export interface NewUser {
  username: string;
  role: Role;
  fullName: string | null;
  passwordHash: string | null;
  /** An API integration: signs dispositions with its token alone (it has no password). */
  integration: boolean;
  /** Days until the personal API token expires. */
  tokenDays: number;
}

export async function addUser(db: Database, actor: string, u: NewUser): Promise<{ username: string; role: Role; token: string; tokenExpiresAt: string }> {
  const token = issueCredential();
  return inTransaction(db, async (tx) => {
    const r = await tx.query<{ token_expires_at: Date }>(
      `INSERT INTO users (username, role, full_name, token_id, token_hash, password_hash, integration, token_expires_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7, now() + make_interval(days => $8)) ON CONFLICT (username) DO NOTHING RETURNING token_expires_at`,
      [u.username, u.role, u.fullName, token.id, token.secretHash, u.passwordHash, u.integration, u.tokenDays],
    );
    if (r.rowCount === 0) throw new ConflictError('already_exists', `user "${u.username}" already exists`);
    const tokenExpiresAt = r.rows[0]!.token_expires_at.toISOString();
    await appendAudit(tx, {
      actor, action: 'user.add', entity: `user:${u.username}`, reason: null,
      details: {
        role: u.role, fullName: u.fullName, passwordSet: u.passwordHash !== null, integration: u.integration, tokenExpiresAt,
        tokenDigest: credentialDigest(token.secretHash), passwordDigest: credentialDigest(u.passwordHash),
      },
    });
    return { username: u.username, role: u.role, token: token.bearer, tokenExpiresAt };
  });
}

/** Runs a change to one user with its audit entry; NotFoundError when there is no such user. */
async function changeUser<T>(db: Database, username: string, change: (tx: Transaction) => Promise<T>): Promise<T> {
  return inTransaction(db, async (tx) => {
    const found = await tx.query('SELECT 1 FROM users WHERE username = $1 FOR UPDATE', [username]);
    if (found.rowCount === 0) throw new NotFoundError('not_found', `no user "${username}"`);
    return change(tx);
  });
}

/**
 * Sets (or resets) a person's password. A reset is a credential reset: their sessions end and
 * their API token is revoked (a new one: `visq user token`).
 */
export async function setPassword(db: Database, actor: string, username: string, passwordHash: string): Promise<void> {
  await changeUser(db, username, async (tx) => {
    await tx.query('UPDATE users SET password_hash = $2, token_id = NULL, token_hash = NULL, token_expires_at = NULL WHERE username = $1', [username, passwordHash]);
    await tx.query('DELETE FROM sessions WHERE username = $1', [username]);
    await appendAudit(tx, { actor, action: 'user.password', entity: `user:${username}`, reason: null, details: { tokenRevoked: true, tokenDigest: null, passwordDigest: credentialDigest(passwordHash) } });
  });
}

export async function setRole(db: Database, actor: string, username: string, role: Role, reason: string | null): Promise<void> {
  await changeUser(db, username, async (tx) => {
    await tx.query('UPDATE users SET role = $2 WHERE username = $1', [username, role]);
    await appendAudit(tx, { actor, action: 'user.role', entity: `user:${username}`, reason, details: { role } });
  });
}

/** Disables (sessions ended, token and password refused) or enables an account; it stays in the record. */
export async function setUserDisabled(db: Database, actor: string, username: string, disabled: boolean, reason: string | null): Promise<void> {
  await changeUser(db, username, async (tx) => {
    await tx.query('UPDATE users SET disabled_at = CASE WHEN $2 THEN now() END WHERE username = $1', [username, disabled]);
    if (disabled) await tx.query('DELETE FROM sessions WHERE username = $1', [username]);
    await appendAudit(tx, { actor, action: disabled ? 'user.disable' : 'user.enable', entity: `user:${username}`, reason, details: {} });
  });
}

export async function setIntegration(db: Database, actor: string, username: string, integration: boolean, reason: string | null): Promise<void> {
  await changeUser(db, username, async (tx) => {
    await tx.query('UPDATE users SET integration = $2 WHERE username = $1', [username, integration]);
    await appendAudit(tx, { actor, action: 'user.integration', entity: `user:${username}`, reason, details: { integration } });
  });
}

/** A new personal API token (the old one stops working), shown once. */
export async function issueToken(db: Database, actor: string, username: string, days: number): Promise<{ username: string; token: string; tokenExpiresAt: string }> {
  const token = issueCredential();
  return changeUser(db, username, async (tx) => {
    const r = await tx.query<{ token_expires_at: Date }>(
      'UPDATE users SET token_id = $2, token_hash = $3, token_expires_at = now() + make_interval(days => $4) WHERE username = $1 RETURNING token_expires_at',
      [username, token.id, token.secretHash, days]);
    const tokenExpiresAt = r.rows[0]!.token_expires_at.toISOString();
    await appendAudit(tx, { actor, action: 'user.token', entity: `user:${username}`, reason: null, details: { tokenExpiresAt, tokenDigest: credentialDigest(token.secretHash) } });
    return { username, token: token.bearer, tokenExpiresAt };
  });
}

export async function revokeToken(db: Database, actor: string, username: string, reason: string | null): Promise<void> {
  await changeUser(db, username, async (tx) => {
    await tx.query('UPDATE users SET token_id = NULL, token_hash = NULL, token_expires_at = NULL WHERE username = $1', [username]);
    await appendAudit(tx, { actor, action: 'user.token.revoke', entity: `user:${username}`, reason, details: { tokenDigest: null } });
  });
}

export interface Person { username: string; role: Role; name: string; passwordHash: string | null; integration: boolean; disabled: boolean }

export async function findPerson(db: Queryable, username: string): Promise<Person | null> {
  const r = await db.query<{ username: string; role: Role; name: string; password_hash: string | null; integration: boolean; disabled: boolean }>(
    `SELECT username, role, coalesce(full_name, username) AS name, password_hash, integration, disabled_at IS NOT NULL AS disabled
     FROM users WHERE username = $1`, [username]);
  const row = r.rows[0];
  return row ? { username: row.username, role: row.role, name: row.name, passwordHash: row.password_hash, integration: row.integration, disabled: row.disabled } : null;
}

export interface Account {
  username: string; role: Role; name: string; integration: boolean; disabled: boolean; passwordSet: boolean;
  /** null: no token (revoked, or reset with the password). */
  tokenExpiresAt: string | null;
  createdAt: string;
}

export async function listUsers(db: Queryable): Promise<Account[]> {
  const r = await db.query<{ username: string; role: Role; name: string; integration: boolean; disabled: boolean; password_set: boolean; token_expires_at: Date | null; created_at: Date }>(
    `SELECT username, role, coalesce(full_name, username) AS name, integration, disabled_at IS NOT NULL AS disabled,
       password_hash IS NOT NULL AS password_set, token_expires_at, created_at FROM users ORDER BY username`);
  return r.rows.map((u) => ({
    username: u.username, role: u.role, name: u.name, integration: u.integration, disabled: u.disabled, passwordSet: u.password_set,
    tokenExpiresAt: u.token_expires_at?.toISOString() ?? null, createdAt: u.created_at.toISOString(),
  }));
}

/**
 * Resolves a bearer credential to the station or person it belongs to; null when it is not valid:
 * unknown, revoked, expired, or its station or person disabled.
 */
export async function authenticate(db: Queryable, bearer: string): Promise<Principal | null> {
  const parsed = parseBearer(bearer);
  if (!parsed) return null;
  const r = await db.query<{ kind: 'station' | 'user'; name: string; site: string | null; line: string | null; role: Role | null; hash: Buffer }>({
    name: 'authenticate',
    text: `SELECT 'station' AS kind, station_id AS name, site, line, NULL AS role, key_hash AS hash FROM stations
       WHERE key_id = $1 AND disabled_at IS NULL
     UNION ALL
     SELECT 'user', username, NULL, NULL, role, token_hash FROM users
       WHERE token_id = $1 AND disabled_at IS NULL AND (token_expires_at IS NULL OR token_expires_at > now())`,
    values: [parsed.id],
  });
  const row = r.rows[0];
  if (!row || !secretMatches(parsed.secret, row.hash)) return null;
  return row.kind === 'station'
    ? { kind: 'station', stationId: row.name, site: row.site!, line: row.line! }
    : { kind: 'user', username: row.name, role: row.role! };
}
