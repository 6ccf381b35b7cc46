import { issueCredential, parseBearer, secretMatches } from '../access/credentials.js';
import type { Principal, Role } from '../access/roles.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { appendAudit } from './audit-trail.js';
import { inTransaction, type Database, type Queryable } from './database.js';

export interface NewUser { username: string; role: Role; fullName: string | null; passwordHash: string | null }

export async function addUser(db: Database, actor: string, u: NewUser): Promise<{ username: string; role: Role; token: string }> {
  const token = issueCredential();
  return inTransaction(db, async (tx) => {
    const r = await tx.query(
      'INSERT INTO users (username, role, full_name, token_id, token_hash, password_hash) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (username) DO NOTHING',
      [u.username, u.role, u.fullName, token.id, token.secretHash, u.passwordHash],
    );
    if (r.rowCount === 0) throw new ConflictError('already_exists', `user "${u.username}" already exists`);
    await appendAudit(tx, { actor, action: 'user.add', entity: `user:${u.username}`, reason: null, details: { role: u.role, fullName: u.fullName, passwordSet: u.passwordHash !== null } });
    return { username: u.username, role: u.role, token: token.bearer };
  });
}

/** Sets (or resets) a person's password and ends their sessions. */
export async function setPassword(db: Database, actor: string, username: string, passwordHash: string): Promise<void> {
  await inTransaction(db, async (tx) => {
    const r = await tx.query('UPDATE users SET password_hash = $2 WHERE username = $1', [username, passwordHash]);
    if (r.rowCount === 0) throw new NotFoundError('not_found', `no user "${username}"`);
    await tx.query('DELETE FROM sessions WHERE username = $1', [username]);
    await appendAudit(tx, { actor, action: 'user.password', entity: `user:${username}`, reason: null, details: {} });
  });
}

export interface Person { username: string; role: Role; name: string; passwordHash: string | null }

export async function findPerson(db: Queryable, username: string): Promise<Person | null> {
  const r = await db.query<{ username: string; role: Role; name: string; password_hash: string | null }>(
    'SELECT username, role, coalesce(full_name, username) AS name, password_hash FROM users WHERE username = $1', [username]);
  const row = r.rows[0];
  return row ? { username: row.username, role: row.role, name: row.name, passwordHash: row.password_hash } : null;
}

/** Resolves a bearer credential to the station or person it belongs to; null when it is not valid. */
export async function authenticate(db: Queryable, bearer: string): Promise<Principal | null> {
  const parsed = parseBearer(bearer);
  if (!parsed) return null;
  const r = await db.query<{ kind: 'station' | 'user'; name: string; site: string | null; line: string | null; role: Role | null; hash: Buffer }>(
    `SELECT 'station' AS kind, station_id AS name, site, line, NULL AS role, key_hash AS hash FROM stations WHERE key_id = $1
     UNION ALL
     SELECT 'user', username, NULL, NULL, role, token_hash FROM users WHERE token_id = $1`,
    [parsed.id],
  );
  const row = r.rows[0];
  if (!row || !secretMatches(parsed.secret, row.hash)) return null;
  return row.kind === 'station'
    ? { kind: 'station', stationId: row.name, site: row.site!, line: row.line! }
    : { kind: 'user', username: row.name, role: row.role! };
}
