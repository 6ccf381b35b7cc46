import { credentialDigest, issueCredential } from '../access/credentials.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { StationContext } from '../inspection/trace-fields.js';
import { appendAudit } from './audit-trail.js';
import { inTransaction, type Database, type Queryable } from './database.js';

export async function addStation(db: Database, actor: string, stationId: string, site: string, line: string): Promise<{ stationId: string; apiKey: string }> {
  const key = issueCredential();
  return inTransaction(db, async (tx) => {
    const r = await tx.query(
      'INSERT INTO stations (station_id, site, line, key_id, key_hash) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (station_id) DO NOTHING',
      [stationId, site, line, key.id, key.secretHash],
    );
    if (r.rowCount === 0) throw new ConflictError('already_exists', `station "${stationId}" is already registered`);
    await appendAudit(tx, { actor, action: 'station.add', entity: `station:${stationId}`, reason: null, details: { site, line, keyDigest: credentialDigest(key.secretHash) } });
    return { stationId, apiKey: key.bearer };
  });
}

/** A new API key for a station (the old one stops working at once), shown once. */
export async function rotateStationKey(db: Database, actor: string, stationId: string, reason: string | null): Promise<{ stationId: string; apiKey: string }> {
  const key = issueCredential();
  return inTransaction(db, async (tx) => {
    const r = await tx.query('UPDATE stations SET key_id = $2, key_hash = $3 WHERE station_id = $1', [stationId, key.id, key.secretHash]);
    if (r.rowCount === 0) throw new NotFoundError('not_found', `no station "${stationId}"`);
    await appendAudit(tx, { actor, action: 'station.key', entity: `station:${stationId}`, reason, details: { keyDigest: credentialDigest(key.secretHash) } });
    return { stationId, apiKey: key.bearer };
  });
}

/** Disables (its key refused) or enables a station; it stays in the record. */
export async function setStationDisabled(db: Database, actor: string, stationId: string, disabled: boolean, reason: string | null): Promise<void> {
  await inTransaction(db, async (tx) => {
    const r = await tx.query('UPDATE stations SET disabled_at = CASE WHEN $2 THEN now() END WHERE station_id = $1', [stationId, disabled]);
    if (r.rowCount === 0) throw new NotFoundError('not_found', `no station "${stationId}"`);
    await appendAudit(tx, { actor, action: disabled ? 'station.disable' : 'station.enable', entity: `station:${stationId}`, reason, details: {} });
  });
}

export interface StationListing { stationId: string; site: string; line: string; disabled: boolean; createdAt: string }

export async function listStations(db: Queryable): Promise<StationListing[]> {
  const r = await db.query<{ station_id: string; site: string; line: string; disabled: boolean; created_at: Date }>(
    'SELECT station_id, site, line, disabled_at IS NOT NULL AS disabled, created_at FROM stations ORDER BY station_id');
  return r.rows.map((s) => ({ stationId: s.station_id, site: s.site, line: s.line, disabled: s.disabled, createdAt: s.created_at.toISOString() }));
}

/** Where a station is, or null when it is not registered (or disabled). */
export async function findStation(db: Queryable, stationId: string): Promise<{ site: string; line: string } | null> {
  const r = await db.query<{ site: string; line: string }>('SELECT site, line FROM stations WHERE station_id = $1 AND disabled_at IS NULL', [stationId]);
  return r.rows[0] ?? null;
}

/** The MES's current job for a station (retained `…/context`), or null. */
export async function findStationContext(db: Queryable, stationId: string): Promise<StationContext | null> {
  const r = await db.query<{ context: StationContext }>({ name: 'find-station-context', text: 'SELECT context FROM station_context WHERE station_id = $1', values: [stationId] });
  return r.rows[0]?.context ?? null;
}

export async function saveStationContext(db: Queryable, stationId: string, context: StationContext): Promise<void> {
  await db.query(
    `INSERT INTO station_context (station_id, context) VALUES ($1, $2)
     ON CONFLICT (station_id) DO UPDATE SET context = EXCLUDED.context, received_at = now()`,
    [stationId, JSON.stringify(context)],
  );
}

/** An empty retained `…/context` clears the station's job. */
export async function clearStationContext(db: Queryable, stationId: string): Promise<void> {
  await db.query('DELETE FROM station_context WHERE station_id = $1', [stationId]);
}
