import { randomUUID } from 'node:crypto';
import type { Decision, DispositionDecision, Verdict } from '../quality/decision.js';
import { finalVerdictOf, needsReview, signatureMeaning } from '../quality/decision.js';
import type { LotPart } from '../quality/lot-statistics.js';
import type { QualityPlan } from '../quality/quality-plan.js';
import { appendAudit } from './audit-trail.js';
import { inTransaction, type Database, type Queryable } from './database.js';
import { findLotHold, type LotHold } from './lots.js';
import { lockFilesShared, pinnedJsonSql, releaseFilesOfInspectionsSql, removedJsonSql } from './stored-files.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { Signer } from '../inspection/dispose.js';
import { verdictMessage, type InspectionDocument, type ModelUsed } from '../inspection/inspection-document.js';


export interface NewInspection {
  id: string;
  stationId: string;
  site: string;
  line: string;
  serial: string;
  partNumber: string;
  lotId: string;
  workOrder: string | null;
  operation: string | null;
  operator: string | null;
  capturedAt: Date;
  plan: { partNumber: string; operation: string; version: number };
  /** `bytes`: the file's size; `prepared`: the model-input pixels stored beside it (their keys and total size). */
  images: { sha256: string; mediaType: string; width: number; height: number; exifOrientation: number | null; bytes: number; prepared: { keys: string[]; bytes: number } }[];
}

/** A station's Idempotency-Key for one request (CONTRACT.md `POST /v1/inspections`), kept until it expires. */
export interface IdempotencyKey { key: string; requestHash: string; ttlSeconds: number }

/**
 * Records an accepted upload, and its Idempotency-Key when it has one, in one statement. Returns
 * `created: false` with nothing recorded when the station's key is still held by another request
 * (a concurrent repeat); the caller then looks the key up.
 *
 * Its images are entered in the store's index under a shared lock on each (stored-files.ts): an
 * image the pruner removed (the same bytes posted earlier, since removed) loses its removal mark,
 * and `restore` stores it again before the inspection commits, so no recorded inspection lacks its file.
 */
export async function recordInspection(
  db: Database, ins: NewInspection, idempotency: IdempotencyKey | null, restore: (sha256s: string[]) => Promise<void>,
): Promise<{ id: string; created: boolean }> {
  const shas = ins.images.map((i) => i.sha256);
  return inTransaction(db, async (tx) => {
    await lockFilesShared(tx, shas);
    // One statement: key, lot, inspection, its images and their entries in the store's index.
    // An expired key is taken over; a live one stops the whole insert.
    const inserted = await tx.query<{ id: string; revived: string[] }>({
      name: 'record-inspection',
      text: `WITH key AS (
         INSERT INTO idempotency_keys (station_id, key, request_hash, inspection_id, expires_at)
         SELECT $2, $23, $24, $1, now() + make_interval(secs => $25) WHERE $23::text IS NOT NULL
         ON CONFLICT (station_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, inspection_id = EXCLUDED.inspection_id, expires_at = EXCLUDED.expires_at
           WHERE idempotency_keys.expires_at <= now()
         RETURNING 1),
       go AS (SELECT 1 WHERE $23::text IS NULL OR EXISTS (SELECT 1 FROM key)),
       lot AS (INSERT INTO lots (lot_id) SELECT $7 FROM go ON CONFLICT DO NOTHING),
       ins AS (
         INSERT INTO inspections (id, station_id, site, line, serial, part_number, lot_id, work_order, operation, operator,
           captured_at, plan_part_number, plan_operation, plan_version)
         SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14 FROM go RETURNING id),
       v AS (SELECT * FROM unnest($15::text[], $16::text[], $17::int[], $18::int[], $19::smallint[], $20::bigint[], $21::bigint[], $22::text[])
               WITH ORDINALITY AS v(sha256, media_type, width, height, exif_orientation, bytes, prepared_bytes, prepared_keys, view)),
       img AS (
         INSERT INTO inspection_images (inspection_id, view, sha256, media_type, width, height, exif_orientation)
         SELECT ins.id, v.view - 1, v.sha256, v.media_type, v.width, v.height, v.exif_orientation FROM ins, v),
       revived AS (SELECT sha256 FROM stored_files WHERE sha256 = ANY($15) AND removed_at IS NOT NULL),
       files AS (
         INSERT INTO stored_files (sha256, bytes, prepared_bytes, prepared_keys)
         SELECT DISTINCT ON (v.sha256) v.sha256, v.bytes, v.prepared_bytes, string_to_array(v.prepared_keys, ',') FROM ins, v ORDER BY v.sha256
         ON CONFLICT (sha256) DO UPDATE SET
           bytes = EXCLUDED.bytes,
           prepared_bytes = CASE WHEN stored_files.prepared_removed_at IS NULL THEN greatest(stored_files.prepared_bytes, EXCLUDED.prepared_bytes) ELSE EXCLUDED.prepared_bytes END,
           prepared_keys = CASE WHEN stored_files.prepared_removed_at IS NULL THEN ARRAY(SELECT DISTINCT k FROM unnest(stored_files.prepared_keys || EXCLUDED.prepared_keys) k) ELSE EXCLUDED.prepared_keys END,
           prepared_removed_at = NULL, stored_at = now(), retain_until = NULL,
           removed_at = NULL, removal_policy = NULL, removal_reason = NULL, unlinked_at = NULL)
       SELECT id, ARRAY(SELECT sha256 FROM revived) AS revived FROM ins`,
      values: [ins.id, ins.stationId, ins.site, ins.line, ins.serial, ins.partNumber, ins.lotId, ins.workOrder, ins.operation,
        ins.operator, ins.capturedAt, ins.plan.partNumber, ins.plan.operation, ins.plan.version,
        shas, ins.images.map((i) => i.mediaType), ins.images.map((i) => i.width), ins.images.map((i) => i.height), ins.images.map((i) => i.exifOrientation),
        ins.images.map((i) => i.bytes), ins.images.map((i) => i.prepared.bytes), ins.images.map((i) => i.prepared.keys.join(',')),
        idempotency?.key ?? null, idempotency?.requestHash ?? null, idempotency?.ttlSeconds ?? null],
    });
    const row = inserted.rows[0];
    if (row?.revived.length) await restore(row.revived);
    return { id: ins.id, created: row !== undefined };
  });
}

/** The request a station's unexpired Idempotency-Key was first used for, and where its inspection stands. */
export async function findIdempotencyKey(db: Queryable, stationId: string, key: string): Promise<{ inspectionId: string; requestHash: string; status: InspectionDocument['status'] } | null> {
  const r = await db.query<{ inspection_id: string; request_hash: string; status: InspectionDocument['status'] }>({
    name: 'find-idempotency-key',
    text: `SELECT k.inspection_id, k.request_hash, i.status FROM idempotency_keys k JOIN inspections i ON i.id = k.inspection_id
     WHERE k.station_id = $1 AND k.key = $2 AND k.expires_at > now()`,
    values: [stationId, key],
  });
  const row = r.rows[0];
  return row ? { inspectionId: row.inspection_id, requestHash: row.request_hash, status: row.status } : null;
}

const documentQuery = `
  SELECT i.*, p.document AS plan_document,
    coalesce((SELECT json_agg(json_build_object('sha256', ii.sha256, 'width', ii.width, 'height', ii.height, 'mediaType', ii.media_type, 'exifOrientation', ii.exif_orientation,
        'removed', ${removedJsonSql('f')}, 'pinned', ${pinnedJsonSql('p')}) ORDER BY ii.view)
      FROM inspection_images ii LEFT JOIN stored_files f ON f.sha256 = ii.sha256 LEFT JOIN image_pins p ON p.sha256 = ii.sha256 WHERE ii.inspection_id = i.id), '[]') AS images,
    coalesce((SELECT json_agg(json_build_object('view', a.view, 'model', a.model_id, 'kind', a.kind, 'sha256', a.sha256, 'removed', ${removedJsonSql('f')}) ORDER BY a.view, a.model_id, a.kind)
      FROM inspection_artifacts a LEFT JOIN stored_files f ON f.sha256 = a.sha256 WHERE a.inspection_id = i.id), '[]') AS overlays,
    (SELECT json_build_object('decision', decision, 'finalVerdict', final_verdict, 'reason', reason, 'by', username,
        'name', coalesce(signer_name, username), 'meaning', meaning, 'at', decided_at)
      FROM dispositions WHERE inspection_id = i.id) AS disposition
  FROM inspections i
  JOIN quality_plans p ON p.part_number = i.plan_part_number AND p.operation = i.plan_operation AND p.version = i.plan_version`;

/** A row of `documentQuery`. */
interface DocumentRow {
  id: string; status: InspectionDocument['status']; verdict: Verdict | null; needs_review: boolean; reason: string | null;
  site: string; line: string; station_id: string; serial: string; part_number: string; lot_id: string;
  work_order: string | null; operation: string | null; operator: string | null;
  captured_at: Date; received_at: Date; decided_at: Date | null;
  characteristics: InspectionDocument['characteristics'] | null; models: ModelUsed[] | null;
  plan_part_number: string; plan_operation: string; plan_version: number; plan_document: QualityPlan;
  images: InspectionDocument['images']; overlays: InspectionDocument['overlays'];
  disposition: { decision: DispositionDecision; finalVerdict: Verdict; reason: string; by: string; name: string; meaning: string | null; at: string } | null;
}

const iso = (d: Date | string) => new Date(d).toISOString();
/** Timestamps inside json_build_object come as PostgreSQL writes them; documents give ISO 8601 in UTC. */
const isoAt = <T extends { at: string }>(x: T | null): T | null => (x ? { ...x, at: iso(x.at) } : null);

function toDocument(row: DocumentRow): InspectionDocument {
  const disposition = row.disposition;
  return {
    id: row.id,
    status: row.status,
    verdict: disposition ? disposition.finalVerdict : row.verdict,
    modelVerdict: row.verdict,
    final: disposition !== null,
    awaitingReview: row.needs_review && disposition === null,
    reason: row.reason,
    site: row.site,
    line: row.line,
    stationId: row.station_id,
    serial: row.serial,
    partNumber: row.part_number,
    lotId: row.lot_id,
    workOrder: row.work_order,
    operation: row.operation,
    operator: row.operator,
    capturedAt: iso(row.captured_at),
    receivedAt: iso(row.received_at),
    decidedAt: row.decided_at === null ? null : iso(row.decided_at),
    images: row.images.map((img) => ({ ...img, removed: isoAt(img.removed), pinned: isoAt(img.pinned) })),
    characteristics: row.characteristics ?? [],
    models: row.models ?? [],
    plan: { partNumber: row.plan_part_number, operation: row.plan_operation || null, version: row.plan_version },
    overlays: row.overlays.map((o) => ({ ...o, removed: isoAt(o.removed) })),
    disposition: disposition
      ? { decision: disposition.decision, reason: disposition.reason, by: disposition.by, name: disposition.name, meaning: disposition.meaning, at: iso(disposition.at) }
      : null,
  };
}

export async function findInspection(db: Queryable, id: string): Promise<InspectionDocument | null> {
  const r = await db.query<DocumentRow>(`${documentQuery} WHERE i.id = $1`, [id]);
  return r.rows[0] ? toDocument(r.rows[0]) : null;
}

/** A decided inspection as stored, with its first verdict message (null when it has none). */
export interface DecisionRecord { stored: InspectionDocument; needsReview: boolean; firstMessage: { chainPos: number; payload: Record<string, unknown> } | null }

/** Every decided inspection with its first verdict message, a page at a time (for `visq audit verify`). */
export async function* readDecisionRecords(db: Queryable, pageSize = 500): AsyncGenerator<DecisionRecord[]> {
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const r = await db.query<DocumentRow>(`${documentQuery} WHERE i.status = 'done' AND i.id > $1 ORDER BY i.id LIMIT $2`, [after, pageSize]);
    if (r.rows.length === 0) return;
    const ids = r.rows.map((row) => row.id);
    const first = await db.query<{ inspection_id: string; chain_pos: number; payload: Record<string, unknown> }>(
      'SELECT DISTINCT ON (inspection_id) inspection_id, chain_pos, payload FROM outbox WHERE inspection_id = ANY($1::uuid[]) ORDER BY inspection_id, chain_pos', [ids]);
    const byId = new Map(first.rows.map((m) => [m.inspection_id, { chainPos: m.chain_pos, payload: m.payload }]));
    yield r.rows.map((row) => ({ stored: toDocument(row), needsReview: row.needs_review, firstMessage: byId.get(row.id) ?? null }));
    after = ids[ids.length - 1]!;
  }
}

/** What a worker needs to evaluate an inspection: its document as it stands, and its plan. */
export interface InspectionWork {
  document: InspectionDocument;
  plan: QualityPlan;
}

/** Marks the inspection running (unless decided) and returns it, in one round trip. */
export async function claimInspection(db: Queryable, id: string): Promise<InspectionWork | null> {
  const r = await db.query<DocumentRow>({
    name: 'claim-inspection',
    text: `WITH claimed AS (UPDATE inspections SET status = 'running' WHERE id = $1 AND status = 'queued' RETURNING id)
     ${documentQuery} WHERE i.id = $1`,
    values: [id],
  });
  const row = r.rows[0];
  if (!row) return null;
  const document = toDocument(row);
  // The statement's snapshot predates its own update.
  if (document.status === 'queued') document.status = 'running';
  return { document, plan: row.plan_document };
}

/** An overlay a worker stored for an inspection (`bytes`: its file's size; `data`: the bytes themselves, while the worker has them). */
export interface Overlay { view: number; model: string; kind: string; sha256: string; bytes: number; data?: Uint8Array }

/** A worker's decision on an inspection, ready to be recorded (recordDecisions). */
export interface DecisionToRecord { work: InspectionWork; decision: Decision; models: ModelUsed[]; overlays: Overlay[] }

const recordDecisionSql = `
  WITH decided AS (
     UPDATE inspections SET status = 'done', verdict = $2, reason = $3, characteristics = $4, models = $5, decided_at = $6, needs_review = $7
     WHERE id = $1 AND status <> 'done' RETURNING id),
   overlays AS (
     INSERT INTO inspection_artifacts (inspection_id, view, model_id, kind, sha256)
     SELECT decided.id, o.view, o.model, o.kind, o.sha256 FROM decided, unnest($8::int[], $9::text[], $10::text[], $11::text[]) AS o(view, model, kind, sha256)),
   revived AS (SELECT sha256 FROM stored_files WHERE sha256 = ANY($11) AND removed_at IS NOT NULL),
   overlay_files AS (
     INSERT INTO stored_files (sha256, bytes, retention_class)
     SELECT DISTINCT ON (o.sha256) o.sha256, o.bytes, 'overlay' FROM decided, unnest($11::text[], $15::bigint[]) AS o(sha256, bytes) ORDER BY o.sha256
     ON CONFLICT (sha256) DO UPDATE SET bytes = EXCLUDED.bytes, retention_class = retention_class_max(stored_files.retention_class, 'overlay'),
       stored_at = now(), retain_until = NULL, removed_at = NULL, removal_policy = NULL, removal_reason = NULL, unlinked_at = NULL),
   -- The images now count in the verdict's class; no longer undecided, the pruner may look at them again.
   image_files AS (
     UPDATE stored_files SET retention_class = retention_class_max(retention_class, lower($2)), retain_until = NULL
     WHERE sha256 IN (SELECT sha256 FROM inspection_images WHERE inspection_id IN (SELECT id FROM decided))),
   message AS (
     INSERT INTO outbox (message_id, inspection_id, station_id, payload)
     SELECT $12, decided.id, $13, $14 FROM decided RETURNING seq)
   -- Wakes the relay at once instead of at its next poll.
   SELECT pg_notify('visq_outbox', ''), ARRAY(SELECT sha256 FROM revived) AS revived FROM message`;

/** The document a decision makes of its inspection, and the statement's parameters that store it. */
function decisionStatement({ work, decision, models, overlays }: DecisionToRecord): { document: InspectionDocument; params: unknown[] } {
  const decidedAt = new Date();
  const awaitingReview = needsReview(decision.verdict, work.plan);
  const document: InspectionDocument = {
    ...work.document,
    status: 'done',
    verdict: decision.verdict,
    modelVerdict: decision.verdict,
    awaitingReview,
    reason: decision.reason,
    decidedAt: decidedAt.toISOString(),
    characteristics: decision.characteristics,
    models,
    overlays: overlays.map(({ view, model, kind, sha256 }) => ({ view, model, kind, sha256, removed: null })),
  };
  const messageId = randomUUID();
  const params = [work.document.id, decision.verdict, decision.reason, JSON.stringify(decision.characteristics), JSON.stringify(models), decidedAt,
    awaitingReview,
    overlays.map((o) => o.view), overlays.map((o) => o.model), overlays.map((o) => o.kind), overlays.map((o) => o.sha256),
    messageId, document.stationId, JSON.stringify(verdictMessage(document, messageId, null)), overlays.map((o) => o.bytes)];
  return { document, params };
}

/**
 * Stores decisions, their overlays and their verdict messages; all of them or none (one
 * transaction; GroupCommit gathers the decisions that arrive together). Only the first decision
 * of an inspection counts: a retried job that finds it decided changes nothing (`recorded: false`).
 * The overlays enter the store's index under shared locks (stored-files.ts): an overlay the pruner
 * removed since the worker stored it (the same bytes as an older inspection's, say from the same
 * pixels) loses its removal mark, and `restore` stores it again before the decisions commit.
 */
export async function recordDecisions(
  db: Database,
  items: readonly DecisionToRecord[],
  restore: (overlays: Overlay[]) => Promise<void> = async () => {},
): Promise<{ recorded: boolean; document: InspectionDocument }[]> {
  const statements = items.map(decisionStatement);
  const overlays = items.flatMap((d) => d.overlays);
  if (statements.length === 1 && overlays.length === 0) {
    // One statement commits by itself: no transaction's round trips.
    const r = await db.query({ name: 'record-decision', text: recordDecisionSql, values: statements[0]!.params });
    return [{ recorded: r.rowCount === 1, document: statements[0]!.document }];
  }
  return inTransaction(db, async (tx) => {
    await lockFilesShared(tx, overlays.map((o) => o.sha256));
    // The outbox's order lock (each message's insert takes it) before any row: two groups deciding the same inspection (a retried job) cannot deadlock.
    if (statements.length > 1) await tx.query(`SELECT pg_advisory_xact_lock(hashtext('visq:outbox_order'))`);
    const results = [];
    for (const [i, { params, document }] of statements.entries()) {
      const r = await tx.query<{ revived: string[] }>({ name: 'record-decision', text: recordDecisionSql, values: params });
      const revived = new Set(r.rows[0]?.revived ?? []);
      if (revived.size) await restore(items[i]!.overlays.filter((o) => revived.has(o.sha256)));
      results.push({ recorded: r.rowCount === 1, document });
    }
    return results;
  });
}

async function enqueueVerdictMessage(c: Queryable, doc: InspectionDocument, supersedes: string | null) {
  const messageId = randomUUID();
  await c.query('INSERT INTO outbox (message_id, inspection_id, station_id, payload) VALUES ($1,$2,$3,$4)',
    [messageId, doc.id, doc.stationId, JSON.stringify(verdictMessage(doc, messageId, supersedes))]);
  // Wakes the relay at once instead of at its next poll.
  await c.query(`SELECT pg_notify('visq_outbox', '')`);
  return messageId;
}

/**
 * A reviewer's signed decision: makes the verdict final, queues the superseding message and audits
 * it, in one transaction. Throws NotFoundError, or ConflictError when the inspection is not (or no
 * longer) waiting for a person.
 */
export async function recordDisposition(db: Database, id: string, signer: Signer, decision: DispositionDecision, reason: string): Promise<InspectionDocument> {
  return inTransaction(db, async (c) => {
    const r = await c.query<{ status: string; needs_review: boolean }>('SELECT status, needs_review FROM inspections WHERE id = $1 FOR UPDATE', [id]);
    const row = r.rows[0];
    if (!row) throw new NotFoundError('not_found', `no inspection ${id}`);
    if (row.status !== 'done') throw new ConflictError('not_decided', 'the inspection has no verdict yet');
    if (!row.needs_review) throw new ConflictError('not_awaiting_review', 'the inspection is not awaiting review');
    const meaning = signatureMeaning(decision);
    const inserted = await c.query(
      `INSERT INTO dispositions (inspection_id, decision, final_verdict, reason, username, signer_name, meaning, signed_with)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING RETURNING decided_at`,
      [id, decision, finalVerdictOf(decision), reason, signer.username, signer.name, meaning, signer.method],
    );
    if (inserted.rowCount === 0) throw new ConflictError('already_disposed', 'the inspection has already been disposed');
    // Its images now count as a disposed part's; no longer awaiting review, the pruner may look at its files again.
    await c.query(`UPDATE stored_files SET retention_class = 'disposed' WHERE sha256 IN (SELECT sha256 FROM inspection_images WHERE inspection_id = $1)`, [id]);
    await c.query(releaseFilesOfInspectionsSql('$1::uuid'), [id]);
    const previous = await c.query<{ message_id: string }>('SELECT message_id FROM outbox WHERE inspection_id = $1 ORDER BY seq DESC LIMIT 1', [id]);
    const document = (await findInspection(c, id))!;
    await enqueueVerdictMessage(c, document, previous.rows[0]?.message_id ?? null);
    await appendAudit(c, {
      actor: signer.username, action: 'inspection.disposition', entity: `inspection:${id}`, reason,
      details: { decision, finalVerdict: document.verdict, modelVerdict: document.modelVerdict, signer: signer.name, meaning, signedWith: signer.method, serial: document.serial, lotId: document.lotId },
    });
    return document;
  });
}

export interface ReviewFilter { line?: string; stationId?: string; partNumber?: string; lotId?: string; olderThanSeconds?: number; limit: number }

/** Inspections awaiting a person, oldest first. */
export async function listAwaitingReview(db: Queryable, f: ReviewFilter): Promise<InspectionDocument[]> {
  const r = await db.query<DocumentRow>(
    `${documentQuery}
     WHERE i.needs_review AND NOT EXISTS (SELECT 1 FROM dispositions d WHERE d.inspection_id = i.id)
       AND ($1::text IS NULL OR i.line = $1) AND ($2::text IS NULL OR i.station_id = $2)
       AND ($3::text IS NULL OR i.part_number = $3) AND ($4::text IS NULL OR i.lot_id = $4)
       AND ($5::int IS NULL OR i.decided_at <= now() - make_interval(secs => $5))
     ORDER BY i.decided_at, i.id LIMIT $6`,
    [f.line ?? null, f.stationId ?? null, f.partNumber ?? null, f.lotId ?? null, f.olderThanSeconds ?? null, f.limit],
  );
  return r.rows.map(toDocument);
}

export interface LotPage {
  lotId: string;
  partNumbers: string[];
  /** The lot is on hold: none of its images is removed while it lasts. */
  hold: LotHold | null;
  counts: { PASS: number; FAIL: number; REVIEW: number; pending: number };
  inspections: { id: string; serial: string; verdict: string | null; final: boolean }[];
  nextCursor: string | null;
}

/** A lot's counts (final verdicts where disposed) and one page of its inspections. */
export async function findLot(db: Queryable, lotId: string, cursor: { receivedAt: string; id: string } | null, limit: number): Promise<LotPage | null> {
  const summary = await db.query<{ part_numbers: string[] | null; pass: number; fail: number; review: number; pending: number }>(
    `SELECT array_agg(DISTINCT i.part_number ORDER BY i.part_number) AS part_numbers,
       count(*) FILTER (WHERE coalesce(d.final_verdict, i.verdict) = 'PASS') AS pass,
       count(*) FILTER (WHERE coalesce(d.final_verdict, i.verdict) = 'FAIL') AS fail,
       count(*) FILTER (WHERE d.final_verdict IS NULL AND i.verdict = 'REVIEW') AS review,
       count(*) FILTER (WHERE i.status <> 'done') AS pending
     FROM inspections i LEFT JOIN dispositions d ON d.inspection_id = i.id WHERE i.lot_id = $1`,
    [lotId],
  );
  const s = summary.rows[0];
  if (!s || s.part_numbers === null) return null;
  const page = await db.query<{ id: string; serial: string; verdict: Verdict | null; final: boolean; received_at_exact: string }>(
    `SELECT i.id, i.serial, coalesce(d.final_verdict, i.verdict) AS verdict, d.inspection_id IS NOT NULL AS final,
       to_json(i.received_at) #>> '{}' AS received_at_exact
     FROM inspections i LEFT JOIN dispositions d ON d.inspection_id = i.id
     WHERE i.lot_id = $1 AND ($2::timestamptz IS NULL OR (i.received_at, i.id) > ($2, $3::uuid))
     ORDER BY i.received_at, i.id LIMIT $4`,
    [lotId, cursor?.receivedAt ?? null, cursor?.id ?? null, limit + 1],
  );
  const rows = page.rows.slice(0, limit);
  const last = rows[rows.length - 1];
  return {
    lotId,
    partNumbers: s.part_numbers,
    hold: await findLotHold(db, lotId),
    counts: { PASS: Number(s.pass), FAIL: Number(s.fail), REVIEW: Number(s.review), pending: Number(s.pending) },
    inspections: rows.map((r) => ({ id: r.id, serial: r.serial, verdict: r.verdict, final: r.final })),
    // The cursor keeps PostgreSQL's microseconds: a millisecond ISO string would repeat rows.
    nextCursor: page.rows.length > limit && last ? Buffer.from(JSON.stringify({ receivedAt: last.received_at_exact, id: last.id })).toString('base64url') : null,
  };
}

/** Inspections accepted but still without a verdict: the reconciler makes sure each has a queued job. */
export async function listUndecided(db: Queryable, olderThanSeconds: number, limit: number): Promise<string[]> {
  const r = await db.query<{ id: string }>(
    `SELECT id FROM inspections WHERE status <> 'done' AND received_at < now() - make_interval(secs => $1) ORDER BY received_at LIMIT $2`,
    [olderThanSeconds, limit],
  );
  return r.rows.map((row) => row.id);
}

/** Every inspection of one part (part number + serial), newest first. */
export async function listPartHistory(db: Queryable, partNumber: string, serial: string, limit: number): Promise<InspectionDocument[]> {
  const r = await db.query<DocumentRow>(`${documentQuery} WHERE i.part_number = $1 AND i.serial = $2 ORDER BY i.received_at DESC, i.id LIMIT $3`, [partNumber, serial, limit]);
  return r.rows.map(toDocument);
}

export interface LotListing { lotId: string; partNumbers: string[]; inspections: number; lastReceivedAt: string }

/** Lots with their latest inspection, most recent first. */
export async function listLots(db: Queryable, limit: number): Promise<LotListing[]> {
  const r = await db.query<{ lot_id: string; part_numbers: string[]; n: number; last: Date }>(
    `SELECT lot_id, array_agg(DISTINCT part_number ORDER BY part_number) AS part_numbers, count(*) AS n, max(received_at) AS last
     FROM inspections GROUP BY lot_id ORDER BY last DESC LIMIT $1`, [limit]);
  return r.rows.map((row) => ({ lotId: row.lot_id, partNumbers: row.part_numbers, inspections: Number(row.n), lastReceivedAt: iso(row.last) }));
}

/** What lot statistics need of each part in a lot, oldest first. */
export async function listLotParts(db: Queryable, lotId: string): Promise<LotPart[]> {
  const r = await db.query<{ part_number: string; received_at: Date; verdict: Verdict | null; characteristics: LotPart['characteristics'] }>(
    `SELECT i.part_number, i.received_at, coalesce(d.final_verdict, i.verdict) AS verdict,
       coalesce((SELECT json_agg(json_build_object('name', c->>'name', 'result', c->>'result')) FROM jsonb_array_elements(i.characteristics) c), '[]') AS characteristics
     FROM inspections i LEFT JOIN dispositions d ON d.inspection_id = i.id
     WHERE i.lot_id = $1 ORDER BY i.received_at, i.id`, [lotId]);
  return r.rows.map((row) => ({ partNumber: row.part_number, receivedAt: new Date(row.received_at), verdict: row.verdict, characteristics: row.characteristics }));
}

/** The lot's traceability report: every part with all it was judged by, oldest first. */
export async function listLotTrace(db: Queryable, lotId: string): Promise<InspectionDocument[]> {
  const r = await db.query<DocumentRow>(`${documentQuery} WHERE i.lot_id = $1 ORDER BY i.received_at, i.id`, [lotId]);
  return r.rows.map(toDocument);
}
