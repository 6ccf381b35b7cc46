import type { VerdictMessage } from '../inspection/inspection-document.js';
import type { Queryable } from './database.js';

export interface OutboxMessage { seq: number; messageId: string; stationId: string; payload: VerdictMessage }

/** Unsent messages in the order they were made. */
export async function fetchUnsent(db: Queryable, limit: number): Promise<OutboxMessage[]> {
  const r = await db.query<{ seq: number; message_id: string; station_id: string; payload: VerdictMessage }>(
    'SELECT seq, message_id, station_id, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1', [limit]);
  return r.rows.map((row) => ({ seq: row.seq, messageId: row.message_id, stationId: row.station_id, payload: row.payload }));
}

export async function markSent(db: Queryable, seqs: number[]): Promise<void> {
  if (seqs.length) await db.query('UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])', [seqs]);
}

export async function countUnsent(db: Queryable): Promise<number> {
  const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL');
  return r.rows[0]!.n;
}
