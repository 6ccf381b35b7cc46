import { issueCredential } from '../access/credentials.js';
import { ConflictError } from '../errors.js';
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
    await appendAudit(tx, { actor, action: 'station.add', entity: `station:${stationId}`, reason: null, details: { site, line } });
    return { stationId, apiKey: key.bearer };
  });
}

/** The MES's current job for a station (retained `…/context`), or null. */
export async function findStationContext(db: Queryable, stationId: string): Promise<StationContext | null> {
  const r = await db.query<{ context: StationContext }>('SELECT context FROM station_context WHERE station_id = $1', [stationId]);
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
