import type pg from 'pg';
import type { FileReference, PreparedCandidate, RetentionClass, StorageClass, StoredFileFacts } from '../images/retention.js';
import { ConflictError, GoneError, NotFoundError } from '../errors.js';
import type { Pinned, Removed } from '../inspection/inspection-document.js';
import { appendAudit } from './audit-trail.js';
import { inTransaction, type Database, type Queryable, type Transaction } from './database.js';

/**
 * The image store's index (table stored_files): sizes, retention classes, pins, and the removals
 * the pruner records before it unlinks a file.
 *
 * Locking, so that no inspection is ever recorded with a file the pruner is removing: every
 * transaction that makes an inspection refer to a file (an upload, a decision with overlays) holds
 * a shared advisory lock on the file while it clears any removal mark and, when it found one,
 * stores the file again before committing; the pruner holds the exclusive lock on a file from the
 * moment it decides to remove it until the file is unlinked. A person pinning a file takes the
 * exclusive lock too.
 */

/** The advisory-lock space of stored files ("visi"); the key within it is the sha256's first 32 bits. */
const imageLockSpace = 0x76697369;
export const imageLockId = (sha256: string) => parseInt(sha256.slice(0, 8), 16) | 0;
const lockIds = (shas: readonly string[]) => [...new Set(shas.map(imageLockId))].sort((a, b) => a - b);

/** In the caller's transaction: shared locks on these files until it ends. */
export async function lockFilesShared(tx: Transaction, shas: readonly string[]): Promise<void> {
  if (shas.length === 0) return;
  await tx.query({ name: 'lock-files-shared', text: 'SELECT pg_advisory_xact_lock_shared($1, id) FROM unnest($2::int[]) AS id', values: [imageLockSpace, lockIds(shas)] });
}

/** Session locks for the pruner (never waiting): the files whose lock it got, to be released by unlockFiles. */
export async function tryLockFiles(client: pg.ClientBase, shas: readonly string[]): Promise<{ locked: string[]; ids: number[] }> {
  const r = await client.query<{ id: number; ok: boolean }>('SELECT id, pg_try_advisory_lock($1, id) AS ok FROM unnest($2::int[]) AS id', [imageLockSpace, lockIds(shas)]);
  const ids = r.rows.filter((row) => row.ok).map((row) => row.id);
  const got = new Set(ids);
  return { locked: shas.filter((s) => got.has(imageLockId(s))), ids };
}

export async function unlockFiles(client: pg.ClientBase, ids: readonly number[]): Promise<void> {
  if (ids.length) await client.query('SELECT pg_advisory_unlock($1, id) FROM unnest($2::int[]) AS id', [imageLockSpace, ids]);
}

/** The SQL of a stored file's `removed` object (alias `f`), as documents show it. */
export const removedJsonSql = (f: string) =>
  `CASE WHEN ${f}.removed_at IS NULL THEN NULL ELSE json_build_object('at', ${f}.removed_at, 'policy', ${f}.removal_policy, 'reason', ${f}.removal_reason) END`;
export const pinnedJsonSql = (p: string) =>
  `CASE WHEN ${p}.sha256 IS NULL THEN NULL ELSE json_build_object('by', ${p}.pinned_by, 'at', ${p}.pinned_at, 'reason', ${p}.reason) END`;

/** What a 410 says: when, by which policy and why. */
export function removalMessage(sha256: string, r: Removed): string {
  return `image ${sha256} was removed on ${new Date(r.at).toISOString()} by the retention policy (${r.policy}): ${r.reason}`;
}

// ---- the pruner's reads ------------------------------------------------------------------------

/** A keyset position in the pool: the exact stored_at (microseconds) and the sha256. */
export interface PoolCursor { storedAt: string; sha256: string }

/**
 * Files not removed and not deferred, stored at or before `olderThan`, oldest first, after
 * `cursor`; of one class when `retentionClass` is given.
 */
export async function listPoolFiles(q: Queryable, o: { olderThan: Date; cursor: PoolCursor | null; limit: number; retentionClass?: RetentionClass }): Promise<{ sha256: string; cursor: PoolCursor }[]> {
  const r = await q.query<{ sha256: string; stored_at_exact: string }>(
    `SELECT sha256, to_json(stored_at) #>> '{}' AS stored_at_exact FROM stored_files
     WHERE removed_at IS NULL AND retain_until IS NULL AND stored_at <= $1
       AND ($2::timestamptz IS NULL OR (stored_at, sha256) > ($2, $3::text))
       AND ($5::text IS NULL OR retention_class = $5)
     ORDER BY stored_at, sha256 LIMIT $4`,
    [o.olderThan, o.cursor?.storedAt ?? null, o.cursor?.sha256 ?? null, o.limit, o.retentionClass ?? null]);
  return r.rows.map((row) => ({ sha256: row.sha256, cursor: { storedAt: row.stored_at_exact, sha256: row.sha256 } }));
}

interface FactsRow { sha256: string; bytes: number | null; stored_at: Date; pinned: boolean; refs: (Omit<FileReference, 'at'> & { at: string })[] }

/** Everything the retention policy needs to know of these files (retention.ts `fileRetention`). */
export async function listFileFacts(q: Queryable, shas: readonly string[]): Promise<StoredFileFacts[]> {
  const inspectionFacts = `'state', CASE WHEN i.status <> 'done' THEN 'undecided' WHEN i.needs_review AND d.inspection_id IS NULL THEN 'awaiting_review' ELSE 'decided' END,
      'class', CASE WHEN d.inspection_id IS NOT NULL THEN 'disposed' ELSE lower(i.verdict) END,
      'lotHeld', l.held_at IS NOT NULL`;
  const r = await q.query<FactsRow>(
    `SELECT f.sha256, f.bytes, f.stored_at, EXISTS (SELECT 1 FROM image_pins p WHERE p.sha256 = f.sha256) AS pinned,
       (SELECT coalesce(json_agg(ref), '[]') FROM (
          SELECT json_build_object('as', 'image', 'at', i.received_at, 'viewPinned', false, ${inspectionFacts}) AS ref
          FROM inspection_images ii JOIN inspections i ON i.id = ii.inspection_id JOIN lots l ON l.lot_id = i.lot_id
          LEFT JOIN dispositions d ON d.inspection_id = i.id WHERE ii.sha256 = f.sha256
          UNION ALL
          SELECT json_build_object('as', 'overlay', 'at', coalesce(i.decided_at, i.received_at), ${inspectionFacts},
            'viewPinned', EXISTS (SELECT 1 FROM inspection_images v JOIN image_pins vp ON vp.sha256 = v.sha256 WHERE v.inspection_id = ia.inspection_id AND v.view = ia.view))
          FROM inspection_artifacts ia JOIN inspections i ON i.id = ia.inspection_id JOIN lots l ON l.lot_id = i.lot_id
          LEFT JOIN dispositions d ON d.inspection_id = i.id WHERE ia.sha256 = f.sha256) refs) AS refs
     FROM stored_files f WHERE f.sha256 = ANY($1) AND f.removed_at IS NULL`,
    [shas]);
  return r.rows.map((row) => ({
    sha256: row.sha256,
    bytes: Number(row.bytes ?? 0),
    storedAt: new Date(row.stored_at),
    pinned: row.pinned,
    refs: row.refs.map((ref) => ({ ...ref, at: new Date(ref.at) })),
  }));
}

/**
 * In the pruner's transaction: share-locks the lots of the inspections using these files, so that a
 * lot put on hold meanwhile is seen (the hold waits for this transaction, or this sees the hold).
 */
export async function lockLotsOf(tx: Transaction, shas: readonly string[]): Promise<void> {
  await tx.query(
    `SELECT 1 FROM lots WHERE lot_id IN (
       SELECT i.lot_id FROM inspection_images ii JOIN inspections i ON i.id = ii.inspection_id WHERE ii.sha256 = ANY($1)
       UNION SELECT i.lot_id FROM inspection_artifacts ia JOIN inspections i ON i.id = ia.inspection_id WHERE ia.sha256 = ANY($1))
     ORDER BY lot_id FOR SHARE`, [shas]);
}

/** Prepared model inputs not removed yet, stored at or before `olderThan`, oldest first. */
export async function listPreparedFiles(q: Queryable, o: { olderThan: Date; cursor: PoolCursor | null; limit: number }): Promise<(PreparedCandidate & { cursor: PoolCursor })[]> {
  const r = await q.query<{ sha256: string; prepared_bytes: number; stored_at: Date; stored_at_exact: string; undecided: boolean }>(
    `SELECT f.sha256, f.prepared_bytes, f.stored_at, to_json(f.stored_at) #>> '{}' AS stored_at_exact,
       EXISTS (SELECT 1 FROM inspection_images ii JOIN inspections i ON i.id = ii.inspection_id WHERE ii.sha256 = f.sha256 AND i.status <> 'done') AS undecided
     FROM stored_files f
     WHERE f.prepared_removed_at IS NULL AND f.prepared_bytes > 0 AND f.stored_at <= $1
       AND ($2::timestamptz IS NULL OR (f.stored_at, f.sha256) > ($2, $3::text))
     ORDER BY f.stored_at, f.sha256 LIMIT $4`,
    [o.olderThan, o.cursor?.storedAt ?? null, o.cursor?.sha256 ?? null, o.limit]);
  return r.rows.map((row) => ({
    sha256: row.sha256, bytes: Number(row.prepared_bytes), storedAt: new Date(row.stored_at), undecided: row.undecided,
    cursor: { storedAt: row.stored_at_exact, sha256: row.sha256 },
  }));
}

// ---- the pruner's writes -----------------------------------------------------------------------

/**
 * Records removals (before the files are unlinked) and returns each removed file's prepared-input
 * keys that were still there, to be unlinked with it.
 */
export async function recordRemovals(tx: Transaction, removals: readonly { sha256: string; policy: 'quota' | 'max_age'; reason: string }[]): Promise<{ sha256: string; preparedKeys: string[] }[]> {
  if (removals.length === 0) return [];
  const r = await tx.query<{ sha256: string; prepared_keys: string[] }>(
    `WITH r AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS r(sha256, policy, reason)),
     before AS (SELECT f.sha256, CASE WHEN f.prepared_removed_at IS NULL THEN f.prepared_keys ELSE '{}' END AS prepared_keys FROM stored_files f JOIN r USING (sha256) WHERE f.removed_at IS NULL),
     marked AS (
       UPDATE stored_files f SET removed_at = now(), removal_policy = r.policy, removal_reason = r.reason, retain_until = NULL,
         prepared_removed_at = coalesce(f.prepared_removed_at, now())
       FROM r WHERE f.sha256 = r.sha256 AND f.removed_at IS NULL RETURNING f.sha256)
     SELECT b.sha256, b.prepared_keys FROM before b JOIN marked USING (sha256)`,
    [removals.map((x) => x.sha256), removals.map((x) => x.policy), removals.map((x) => x.reason)]);
  return r.rows.map((row) => ({ sha256: row.sha256, preparedKeys: row.prepared_keys }));
}

/** The pruner need not look at these files again before their `until`. */
export async function deferFiles(q: Queryable, deferrals: readonly { sha256: string; until: Date }[]): Promise<void> {
  if (deferrals.length === 0) return;
  await q.query(
    `UPDATE stored_files f SET retain_until = d.until FROM unnest($1::text[], $2::timestamptz[]) AS d(sha256, until)
     WHERE f.sha256 = d.sha256 AND f.removed_at IS NULL`,
    [deferrals.map((d) => d.sha256), deferrals.map((d) => d.until)]);
}

export async function markUnlinked(q: Queryable, shas: readonly string[]): Promise<void> {
  if (shas.length) await q.query('UPDATE stored_files SET unlinked_at = now() WHERE sha256 = ANY($1) AND removed_at IS NOT NULL AND unlinked_at IS NULL', [shas]);
}

/** Removals recorded whose unlink did not happen (a pruner killed in between); of `only` when given. */
export async function listUnlinkPending(q: Queryable, limit: number, only?: readonly string[]): Promise<{ sha256: string; preparedKeys: string[] }[]> {
  const r = await q.query<{ sha256: string; prepared_keys: string[] }>(
    `SELECT sha256, prepared_keys FROM stored_files WHERE removed_at IS NOT NULL AND unlinked_at IS NULL AND ($2::text[] IS NULL OR sha256 = ANY($2))
     ORDER BY sha256 LIMIT $1`, [limit, only ?? null]);
  return r.rows.map((row) => ({ sha256: row.sha256, preparedKeys: row.prepared_keys }));
}

/** Marks prepared inputs removed, unless an undecided inspection uses the image meanwhile; returns the keys to unlink. */
export async function markPreparedRemoved(q: Queryable, shas: readonly string[]): Promise<{ sha256: string; preparedKeys: string[] }[]> {
  if (shas.length === 0) return [];
  const r = await q.query<{ sha256: string; prepared_keys: string[] }>(
    `UPDATE stored_files f SET prepared_removed_at = now() WHERE f.sha256 = ANY($1) AND f.prepared_removed_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM inspection_images ii JOIN inspections i ON i.id = ii.inspection_id WHERE ii.sha256 = f.sha256 AND i.status <> 'done')
     RETURNING f.sha256, f.prepared_keys`, [shas]);
  return r.rows.map((row) => ({ sha256: row.sha256, preparedKeys: row.prepared_keys }));
}

/** Files stored before their sizes were recorded. */
export async function listUnsized(q: Queryable, limit: number): Promise<string[]> {
  const r = await q.query<{ sha256: string }>('SELECT sha256 FROM stored_files WHERE bytes IS NULL AND removed_at IS NULL LIMIT $1', [limit]);
  return r.rows.map((row) => row.sha256);
}

export async function recordSizes(q: Queryable, sizes: readonly { sha256: string; bytes: number }[]): Promise<void> {
  if (sizes.length === 0) return;
  await q.query('UPDATE stored_files f SET bytes = s.bytes FROM unnest($1::text[], $2::bigint[]) AS s(sha256, bytes) WHERE f.sha256 = s.sha256',
    [sizes.map((s) => s.sha256), sizes.map((s) => s.bytes)]);
}

/** Deferrals that have come due go back to the pool; with `all`, every deferral (the policy changed). */
export async function releaseDeferrals(q: Queryable, all: boolean): Promise<void> {
  await q.query('UPDATE stored_files SET retain_until = NULL WHERE removed_at IS NULL AND retain_until IS NOT NULL AND ($1 OR retain_until <= now())', [all]);
}

// ---- usage -------------------------------------------------------------------------------------

export interface ClassUsage { files: number; bytes: number; oldest: string | null }
export interface StorageUsage {
  computedAt: string;
  storedBytes: number;
  /** What of `storedBytes` was stored after `windowStart` (see estimateStoredBytes). */
  window: { start: string; bytes: number };
  classes: Partial<Record<StorageClass, ClassUsage & { prunedFiles: number; prunedBytes: number }>>;
  policyFingerprint: string;
}

/** How far before a measure its window starts: longer than any transaction that stores a file. */
const windowSeconds = 60;
/** A row's bytes that are in the store now: the file unless removed, the prepared inputs unless removed. */
const liveBytesSql = `CASE WHEN removed_at IS NULL THEN coalesce(bytes, 0) ELSE 0 END + CASE WHEN prepared_removed_at IS NULL THEN prepared_bytes ELSE 0 END`;

/** Adds up the store (live files and prepared inputs) by class, in one snapshot: one pass over the live rows. */
export async function measureStore(q: Queryable): Promise<{ at: string; window: StorageUsage['window']; classes: Partial<Record<StorageClass, ClassUsage>> }> {
  const r = await q.query<{ class: StorageClass | 'window'; files: number; bytes: number; oldest: Date | null; at: Date }>(
    `SELECT coalesce(retention_class, 'undecided') AS class, count(*)::bigint AS files, coalesce(sum(bytes), 0)::bigint AS bytes, min(stored_at) AS oldest, now() AS at
     FROM stored_files WHERE removed_at IS NULL GROUP BY 1
     UNION ALL
     SELECT 'prepared', count(*)::bigint, coalesce(sum(prepared_bytes), 0)::bigint, min(stored_at), now()
     FROM stored_files WHERE prepared_removed_at IS NULL AND prepared_bytes > 0
     UNION ALL
     SELECT 'window', 0, coalesce(sum(${liveBytesSql}), 0)::bigint, now() - make_interval(secs => $1), now()
     FROM stored_files WHERE stored_at > now() - make_interval(secs => $1)`, [windowSeconds]);
  const classes: Partial<Record<StorageClass, ClassUsage>> = {};
  let window = { start: new Date().toISOString(), bytes: 0 };
  let at = new Date().toISOString();
  for (const row of r.rows) {
    at = new Date(row.at).toISOString();
    if (row.class === 'window') window = { start: new Date(row.oldest!).toISOString(), bytes: Number(row.bytes) };
    else if (Number(row.files) > 0) classes[row.class] = { files: Number(row.files), bytes: Number(row.bytes), oldest: row.oldest ? new Date(row.oldest).toISOString() : null };
  }
  return { at, window, classes };
}

export async function readStorageUsage(q: Queryable): Promise<StorageUsage | null> {
  const r = await q.query<{ computed_at: Date; stored_bytes: number; window_start: Date; window_bytes: number; classes: StorageUsage['classes']; policy_fingerprint: string }>('SELECT * FROM storage_usage');
  const row = r.rows[0];
  return row ? {
    computedAt: new Date(row.computed_at).toISOString(), storedBytes: Number(row.stored_bytes),
    window: { start: new Date(row.window_start).toISOString(), bytes: Number(row.window_bytes) },
    classes: row.classes, policyFingerprint: row.policy_fingerprint,
  } : null;
}

export async function writeStorageUsage(q: Queryable, u: StorageUsage): Promise<void> {
  await q.query(
    `INSERT INTO storage_usage (id, computed_at, stored_bytes, window_start, window_bytes, classes, policy_fingerprint) VALUES (true, $1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO UPDATE SET computed_at = EXCLUDED.computed_at, stored_bytes = EXCLUDED.stored_bytes, window_start = EXCLUDED.window_start,
       window_bytes = EXCLUDED.window_bytes, classes = EXCLUDED.classes, policy_fingerprint = EXCLUDED.policy_fingerprint`,
    [u.computedAt, u.storedBytes, u.window.start, u.window.bytes, JSON.stringify(u.classes), u.policyFingerprint]);
}

/**
 * The store's size without adding it all up: the pruner's last measure, with what it counted of
 * the files stored in the minute before it replaced by what those and all later ones hold now.
 * Uploads that were committing while it measured are counted so (a transaction's rows carry the
 * time it began); files removed since, except in that window, still count: it errs high.
 */
export async function estimateStoredBytes(q: Queryable): Promise<number> {
  const r = await q.query<{ bytes: number }>(
    `SELECT CASE WHEN u.id IS NULL
        THEN (SELECT coalesce(sum(${liveBytesSql}), 0) FROM stored_files WHERE removed_at IS NULL OR prepared_removed_at IS NULL)
        ELSE u.stored_bytes - u.window_bytes + (SELECT coalesce(sum(${liveBytesSql}), 0) FROM stored_files WHERE stored_at > u.window_start)
      END::bigint AS bytes
     FROM (SELECT true) one LEFT JOIN storage_usage u ON true`);
  return Number(r.rows[0]!.bytes);
}

/** Bytes stored (or referred to again) in the last day, per class, and since when the store has been filling. */
export async function storedLastDay(q: Queryable): Promise<{ classes: Partial<Record<StorageClass, number>>; since: string | null }> {
  const r = await q.query<{ class: StorageClass; bytes: number; since: Date | null }>(
    `SELECT coalesce(retention_class, 'undecided') AS class, coalesce(sum(bytes), 0)::bigint AS bytes, NULL::timestamptz AS since
     FROM stored_files WHERE stored_at > now() - interval '1 day' GROUP BY 1
     UNION ALL SELECT 'prepared', coalesce(sum(prepared_bytes), 0)::bigint, NULL FROM stored_files WHERE stored_at > now() - interval '1 day'
     UNION ALL SELECT 'since', 0, min(stored_at) FROM stored_files`);
  const classes: Partial<Record<StorageClass, number>> = {};
  let since: string | null = null;
  for (const row of r.rows) {
    if ((row.class as string) === 'since') since = row.since ? new Date(row.since).toISOString() : null;
    else if (Number(row.bytes) > 0) classes[row.class] = Number(row.bytes);
  }
  return { classes, since };
}

export async function recordPruneRun(q: Queryable, run: { process: string; startedAt: Date; finishedAt: Date; files: number; bytes: number; byClass: Record<string, { files: number; bytes: number }> }): Promise<void> {
  await q.query(
    `WITH old AS (DELETE FROM prune_runs WHERE finished_at < now() - interval '7 days')
     INSERT INTO prune_runs (process, started_at, finished_at, files, bytes, by_class) VALUES ($1, $2, $3, $4, $5, $6)`,
    [run.process, run.startedAt, run.finishedAt, run.files, run.bytes, JSON.stringify(run.byClass)]);
}

/**
 * Wakes the pruner (it listens while it leads): the store passed its high watermark, an upload was
 * refused, or (in the caller's transaction, sent when it commits) a hold or pin was released.
 */
export async function wakePruner(q: Queryable, why: 'high_watermark' | 'refused' | 'released'): Promise<void> {
  await q.query(`SELECT pg_notify('visq_storage', $1)`, [why]);
}

// ---- serving and pinning -----------------------------------------------------------------------

/**
 * The media type of a stored image or overlay an inspection refers to (overlays: PNG maps and
 * masks, JSON boxes), and its removal when the pruner removed it; null when no inspection refers to it.
 */
export async function findImageForServing(q: Queryable, sha256: string): Promise<{ mediaType: string; removed: Removed | null } | null> {
  const r = await q.query<{ media_type: string; removed: Removed | null }>(
    `SELECT t.media_type, ${removedJsonSql('f')} AS removed FROM (
       SELECT media_type FROM inspection_images WHERE sha256 = $1
       UNION ALL SELECT CASE kind WHEN 'boxes' THEN 'application/json' ELSE 'image/png' END FROM inspection_artifacts WHERE sha256 = $1
       LIMIT 1) t LEFT JOIN stored_files f ON f.sha256 = $1`, [sha256]);
  const row = r.rows[0];
  return row ? { mediaType: row.media_type, removed: row.removed } : null;
}

/** Under the file's exclusive lock: it must be an inspection image still in the store. */
async function lockPinnable(tx: Transaction, sha256: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [imageLockSpace, imageLockId(sha256)]);
  const r = await tx.query<{ removed: Removed | null }>(
    `SELECT ${removedJsonSql('f')} AS removed FROM stored_files f WHERE f.sha256 = $1 AND EXISTS (SELECT 1 FROM inspection_images WHERE sha256 = $1)`, [sha256]);
  const row = r.rows[0];
  if (!row) throw new NotFoundError('not_found', `no inspection image ${sha256}`);
  if (row.removed) throw new GoneError('image_removed', removalMessage(sha256, row.removed));
}

/** "Keep this image": the pruner leaves it (and its view's overlays) alone until it is unpinned. Audited. */
export async function pinImage(db: Database, username: string, sha256: string, reason: string): Promise<Pinned> {
  return inTransaction(db, async (tx) => {
    await lockPinnable(tx, sha256);
    const r = await tx.query<{ pinned_at: Date }>(
      'INSERT INTO image_pins (sha256, pinned_by, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING pinned_at', [sha256, username, reason]);
    if (!r.rows[0]) throw new ConflictError('already_pinned', `image ${sha256} is pinned already`);
    await appendAudit(tx, { actor: username, action: 'image.pin', entity: `image:${sha256}`, reason, details: { sha256 } });
    return { by: username, at: new Date(r.rows[0].pinned_at).toISOString(), reason };
  });
}

/** Ends a pin: the image is subject to the retention policy again. Audited. */
export async function unpinImage(db: Database, username: string, sha256: string, reason: string | null): Promise<void> {
  await inTransaction(db, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [imageLockSpace, imageLockId(sha256)]);
    const r = await tx.query<{ pinned_by: string; reason: string }>('DELETE FROM image_pins WHERE sha256 = $1 RETURNING pinned_by, reason', [sha256]);
    if (!r.rows[0]) throw new ConflictError('not_pinned', `image ${sha256} is not pinned`);
    // What the pin kept, the pruner looks at again.
    await tx.query(
      `UPDATE stored_files SET retain_until = NULL WHERE removed_at IS NULL AND retain_until IS NOT NULL AND sha256 IN (
         SELECT $1 UNION SELECT ia.sha256 FROM inspection_images v JOIN inspection_artifacts ia ON ia.inspection_id = v.inspection_id AND ia.view = v.view WHERE v.sha256 = $1)`,
      [sha256]);
    await wakePruner(tx, 'released');
    await appendAudit(tx, { actor: username, action: 'image.unpin', entity: `image:${sha256}`, reason, details: { sha256, pinnedBy: r.rows[0].pinned_by, pinReason: r.rows[0].reason } });
  });
}

/** The files of these inspections (images and overlays) go back to the pruner's pool: what kept them has ended. */
export const releaseFilesOfInspectionsSql = (inspectionIds: string) =>
  `UPDATE stored_files SET retain_until = NULL WHERE removed_at IS NULL AND retain_until IS NOT NULL AND sha256 IN (
     SELECT sha256 FROM inspection_images WHERE inspection_id IN (${inspectionIds})
     UNION SELECT sha256 FROM inspection_artifacts WHERE inspection_id IN (${inspectionIds}))`;
