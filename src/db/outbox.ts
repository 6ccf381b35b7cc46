import type { VerdictMessage } from '../inspection/inspection-document.js';
import type { ChainedMessage } from './audit-chain.js';
import type { Queryable } from './database.js';

export interface OutboxMessage { seq: number; messageId: string; stationId: string; payload: VerdictMessage }

/** Unsent messages in the order they were made. */
export async function fetchUnsent(db: Queryable, limit: number): Promise<OutboxMessage[]> {
  const r = await db.query<{ seq: number; message_id: string; station_id: string; payload: VerdictMessage }>({
    name: 'fetch-unsent', text: 'SELECT seq, message_id, station_id, payload FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1', values: [limit] });
  return r.rows.map((row) => ({ seq: row.seq, messageId: row.message_id, stationId: row.station_id, payload: row.payload }));
}

export async function markSent(db: Queryable, seqs: number[]): Promise<void> {
  if (seqs.length) await db.query({ name: 'mark-sent', text: 'UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])', values: [seqs] });
}

export async function countUnsent(db: Queryable): Promise<number> {
  const r = await db.query<{ n: number }>({ name: 'count-unsent', text: 'SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL' });
  return r.rows[0]!.n;
}

/** The outbox's hash chain in order, a page at a time, payloads as stored (for `visq audit verify`). */
export async function* readOutboxChain(db: Queryable, pageSize = 1000): AsyncGenerator<ChainedMessage[]> {
  let after = 0;
  for (;;) {
    const r = await db.query<{ chain_pos: number; chain_hash: string; message_id: string; inspection_id: string; station_id: string; payload_text: string }>(
      'SELECT chain_pos, chain_hash, message_id, inspection_id, station_id, payload::text AS payload_text FROM outbox WHERE chain_pos > $1 ORDER BY chain_pos LIMIT $2',
      [after, pageSize]);
    if (r.rows.length === 0) return;
    const page = r.rows.map((m) => ({ chainPos: m.chain_pos, chainHash: m.chain_hash, messageId: m.message_id, inspectionId: m.inspection_id, stationId: m.station_id, payloadText: m.payload_text }));
    yield page;
    after = page[page.length - 1]!.chainPos;
  }
}
