import type pg from 'pg';
import { issueCredential, parseBearer, secretMatches } from '../access/credentials.js';
import type { Principal, Role } from '../access/roles.js';

type Queryable = pg.Pool | pg.PoolClient;

export class AlreadyExistsError extends Error {}

export async function addStation(db: Queryable, stationId: string, site: string, line: string): Promise<{ stationId: string; apiKey: string }> {
  const key = issueCredential();
  const r = await db.query(
    'INSERT INTO stations (station_id, site, line, key_id, key_hash) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (station_id) DO NOTHING',
    [stationId, site, line, key.id, key.secretHash],
  );
  if (r.rowCount === 0) throw new AlreadyExistsError(`station "${stationId}" is already registered`);
  return { stationId, apiKey: key.bearer };
}

export async function addUser(db: Queryable, username: string, role: Role, passwordHash: string | null): Promise<{ username: string; role: Role; token: string }> {
  const token = issueCredential();
  const r = await db.query(
    'INSERT INTO users (username, role, token_id, token_hash, password_hash) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (username) DO NOTHING',
    [username, role, token.id, token.secretHash, passwordHash],
  );
  if (r.rowCount === 0) throw new AlreadyExistsError(`user "${username}" already exists`);
  return { username, role, token: token.bearer };
}

/** Resolves a bearer credential to the station or person it belongs to; null when it is not valid. */
export async function authenticate(db: Queryable, bearer: string): Promise<Principal | null> {
  const parsed = parseBearer(bearer);
  if (!parsed) return null;
  const r = await db.query(
    `SELECT 'station' AS kind, station_id AS name, site, line, NULL AS role, key_hash AS hash FROM stations WHERE key_id = $1
     UNION ALL
     SELECT 'user', username, NULL, NULL, role, token_hash FROM users WHERE token_id = $1`,
    [parsed.id],
  );
  const row = r.rows[0];
  if (!row || !secretMatches(parsed.secret, row.hash)) return null;
  return row.kind === 'station'
    ? { kind: 'station', stationId: row.name, site: row.site, line: row.line }
    : { kind: 'user', username: row.name, role: row.role };
}

/** The MES's current job for a station (retained `…/context`), or null. */
export async function findStationContext(db: Queryable, stationId: string): Promise<Record<string, string | null> | null> {
  const r = await db.query('SELECT context FROM station_context WHERE station_id = $1', [stationId]);
  return r.rows[0]?.context ?? null;
}

export async function saveStationContext(db: Queryable, stationId: string, context: Record<string, string | null>): Promise<void> {
  await db.query(
    `INSERT INTO station_context (station_id, context) VALUES ($1, $2)
     ON CONFLICT (station_id) DO UPDATE SET context = EXCLUDED.context, received_at = now()`,
    [stationId, JSON.stringify(context)],
  );
}
