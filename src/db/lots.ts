import { ConflictError } from '../errors.js';
import { appendAudit } from './audit-trail.js';
import { inTransaction, type Database, type Queryable } from './database.js';
import { releaseFilesOfInspectionsSql, wakePruner } from './stored-files.js';

/** A lot on hold: who put it there, when and why. None of its inspections' images is removed while it lasts. */
export interface LotHold { by: string; at: string; reason: string }

export async function findLotHold(q: Queryable, lotId: string): Promise<LotHold | null> {
  const r = await q.query<{ held_by: string | null; held_at: Date | null; hold_reason: string | null }>('SELECT held_by, held_at, hold_reason FROM lots WHERE lot_id = $1', [lotId]);
  const row = r.rows[0];
  return row?.held_at ? { by: row.held_by!, at: new Date(row.held_at).toISOString(), reason: row.hold_reason! } : null;
}

/**
 * Puts a lot on hold (one not seen yet too: the MES may hold a lot before its first part), with its
 * audit entry. ConflictError when it is on hold already.
 */
export async function holdLot(db: Database, actor: string, lotId: string, reason: string): Promise<LotHold> {
  return inTransaction(db, async (tx) => {
    await tx.query('INSERT INTO lots (lot_id) VALUES ($1) ON CONFLICT DO NOTHING', [lotId]);
    const r = await tx.query<{ held_at: Date }>(
      'UPDATE lots SET held_at = now(), held_by = $2, hold_reason = $3 WHERE lot_id = $1 AND held_at IS NULL RETURNING held_at', [lotId, actor, reason]);
    if (!r.rows[0]) throw new ConflictError('already_held', `lot ${lotId} is on hold already`);
    await appendAudit(tx, { actor, action: 'lot.hold', entity: `lot:${lotId}`, reason, details: { lotId } });
    return { by: actor, at: new Date(r.rows[0].held_at).toISOString(), reason };
  });
}

/** Releases a lot's hold, with its audit entry: its images are subject to the retention policy again. ConflictError when it is not on hold. */
export async function releaseLot(db: Database, actor: string, lotId: string, reason: string | null): Promise<void> {
  await inTransaction(db, async (tx) => {
    const r = await tx.query<{ held_by: string; hold_reason: string }>(
      `UPDATE lots l SET held_at = NULL, held_by = NULL, hold_reason = NULL FROM lots old
       WHERE l.lot_id = $1 AND old.lot_id = l.lot_id AND l.held_at IS NOT NULL RETURNING old.held_by, old.hold_reason`, [lotId]);
    if (!r.rows[0]) throw new ConflictError('not_held', `lot ${lotId} is not on hold`);
    await tx.query(releaseFilesOfInspectionsSql('SELECT id FROM inspections WHERE lot_id = $1'), [lotId]);
    await wakePruner(tx, 'released');
    await appendAudit(tx, { actor, action: 'lot.release', entity: `lot:${lotId}`, reason, details: { lotId, heldBy: r.rows[0].held_by, holdReason: r.rows[0].hold_reason } });
  });
}
