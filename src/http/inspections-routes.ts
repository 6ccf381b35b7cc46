import { randomUUID } from 'node:crypto';
import express, { Router, type Request, type Response } from 'express';
import multer from 'multer';
import { z } from 'zod';
import { checkImage } from '../inference/input-check.js';
import type { ImageStore } from '../images/image-store.js';
import type { PreparedInputs } from '../inference/prepared-inputs.js';
import type { ModelInput } from '../inference/manifest.js';
import type { Logger } from '../app/logger.js';
import type { Metrics } from '../app/metrics.js';
import type { Database } from '../db/database.js';
import { findInspection, findInspectionIdByIdempotencyKey, listAwaitingReview, listPartHistory, recordDisposition, recordInspection, type Signer } from '../db/inspections.js';
import { findCurrentPlan } from '../db/quality-plans.js';
import { findPerson, findStationContext } from '../db/stations-and-users.js';
import { passwordMatches } from '../access/passwords.js';
import { role, stationOnly, username } from './auth.js';
import { HttpError, parseOr400 } from './errors.js';
import { limitRate } from './rate-limits.js';
import { idempotencyKeySchema, uploadFieldsSchema } from './upload-fields.js';
import { note } from '../inspection/trace-fields.js';
import { describeIssues } from '../validation-issues.js';

export interface InspectionRoutesDeps {
  db: Database;
  images: ImageStore;
  enqueue: (inspectionId: string) => Promise<void>;
  /** Inspections waiting for a worker; uploads are refused (503) above `maxQueueDepth`. */
  queueDepth: () => Promise<number>;
  maxQueueDepth: number;
  stationRateLimit: number;
  /** Input specs of the models a plan names, and where their pixels are kept for the workers. */
  modelInputs: (modelIds: readonly string[]) => ModelInput[];
  prepared: PreparedInputs;
  limits: { imageBytes: number; imagePixels: number; imagesPerInspection: number };
  topicPrefix: string;
  metrics: Metrics;
  log: Logger;
}

interface ReceivedImage { bytes: Buffer }

const uuid = z.uuid();

export function inspectionRoutes(deps: InspectionRoutesDeps): Router {
  const router = Router();
  const multipart = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: deps.limits.imageBytes, files: deps.limits.imagesPerInspection, fields: 16, fieldSize: 4096, parts: deps.limits.imagesPerInspection + 16, headerPairs: 100 },
  }).array('image', deps.limits.imagesPerInspection);
  const rawImage = express.raw({ type: 'image/*', limit: deps.limits.imageBytes });

  const perStation = limitRate({
    windowSeconds: 1,
    limit: deps.stationRateLimit,
    key: (req) => (req.principal as { stationId: string }).stationId,
    message: `more than ${deps.stationRateLimit} uploads per second from this station`,
  });
  // A camera retrying an upload that was accepted gets the first inspection, whatever the load, body unread.
  const answerRepeats = async (req: Request, res: Response, next: () => void) => {
    const keyHeader = req.get('idempotency-key');
    if (keyHeader === undefined) return next();
    const k = idempotencyKeySchema.safeParse(keyHeader);
    if (!k.success) throw new HttpError(400, 'invalid_idempotency_key', `Idempotency-Key: ${k.error.issues[0]!.message}`);
    res.locals.idempotencyKey = k.data;
    const station = req.principal as { stationId: string };
    const earlier = await findInspectionIdByIdempotencyKey(deps.db, station.stationId, k.data);
    if (!earlier) return next();
    res.locals.inspectionId = earlier;
    deps.metrics.uploads.inc({ outcome: 'repeated' });
    res.status(200).json(await findInspection(deps.db, earlier));
  };
  const backpressure = async (_req: Request, _res: unknown, next: () => void) => {
    const depth = await deps.queueDepth();
    if (depth > deps.maxQueueDepth) {
      throw new HttpError(503, 'overloaded', `${depth} inspections are waiting for a worker (limit ${deps.maxQueueDepth}); retry later`, { 'Retry-After': '5' });
    }
    next();
  };

  router.post('/inspections', stationOnly, perStation, answerRepeats, backpressure, (req, res, next) => {
    if (req.is('multipart/form-data')) return multipart(req, res, next);
    if (req.is('image/*')) return rawImage(req, res, next);
    throw new HttpError(415, 'unsupported_media_type', 'send multipart/form-data with "image" file parts, or a raw image body with an image/* Content-Type');
  }, async (req, res) => {
    const station = req.principal as Extract<Request['principal'], { kind: 'station' }>;
    const outcome = await acceptUpload(deps, station, req, (res.locals.idempotencyKey as string | undefined) ?? null);
    res.locals.inspectionId = outcome.id;
    deps.metrics.uploads.inc({ outcome: outcome.created ? 'accepted' : 'repeated' });
    if (!outcome.created) {
      res.status(200).json(await findInspection(deps.db, outcome.id));
      return;
    }
    res.status(202).location(`/v1/inspections/${outcome.id}`).json({ id: outcome.id, status: 'queued' });
  });

  router.get('/inspections/:id', role('reviewer'), async (req, res) => {
    const id = String(req.params.id);
    if (!uuid.safeParse(id).success) throw new HttpError(400, 'invalid_id', 'an inspection id is a UUID');
    res.locals.inspectionId = id;
    const doc = await findInspection(deps.db, id);
    if (!doc) throw new HttpError(404, 'not_found', `no inspection ${id}`);
    res.json(doc);
  });

  router.get('/inspections', role('reviewer'), async (req, res) => {
    // A part's history: the query names the part (part number and serial).
    const q = parseOr400(z.object({ partNumber: z.string().min(1).max(64), serial: z.string().min(1).max(128), limit: z.coerce.number().int().min(1).max(500).default(50) }), req.query, 'invalid_query');
    res.json({ inspections: await listPartHistory(deps.db, q.partNumber, q.serial, q.limit) });
  });

  router.get('/review', role('reviewer'), async (req, res) => {
    const q = parseOr400(z.object({
      line: z.string().max(64).optional(), stationId: z.string().max(64).optional(), partNumber: z.string().max(64).optional(),
      lotId: z.string().max(128).optional(), olderThanSeconds: z.coerce.number().int().min(0).optional(),
      limit: z.coerce.number().int().min(1).max(500).default(100),
    }), req.query, 'invalid_query');
    res.json({ inspections: await listAwaitingReview(deps.db, q) });
  });

  // Guessing a signer's password through dispositions is slowed as sign-in is: failed signatures per person.
  const failedSignatures = limitRate({
    windowSeconds: 15 * 60,
    limit: 10,
    key: (req) => (req.principal as { username: string }).username,
    failed: (res) => res.statusCode === 403,
    message: 'too many failed signatures; wait 15 minutes',
  });

  router.post('/inspections/:id/disposition', role('reviewer'), failedSignatures, express.json({ limit: '16kb' }), async (req, res) => {
    const id = String(req.params.id);
    if (!uuid.safeParse(id).success) throw new HttpError(400, 'invalid_id', 'an inspection id is a UUID');
    res.locals.inspectionId = id;
    const body = parseOr400(z.object({
      decision: z.enum(['accept', 'rework', 'scrap']),
      reason: note(2000),
      password: z.string().min(1).max(1024).optional(),
    }).strict(), req.body, 'invalid_disposition');
    const signedBy = await signer(deps.db, username(req), body.password).catch((err) => {
      req.log.warn({ username: username(req), inspectionId: id }, 'disposition signature refused');
      throw err;
    });
    const out = await recordDisposition(deps.db, id, signedBy, body.decision, body.reason, deps.topicPrefix);
    if (!out.ok) {
      const [status, message] = {
        not_found: [404, `no inspection ${id}`],
        not_decided: [409, 'the inspection has no verdict yet'],
        not_awaiting_review: [409, 'the inspection is not awaiting review'],
        already_disposed: [409, 'the inspection has already been disposed'],
      }[out.code] as [number, string];
      throw new HttpError(status, out.code, message);
    }
    req.log.info({ inspectionId: id, decision: body.decision }, 'disposition recorded');
    res.json(out.document);
  });

  router.get('/images/:sha256', role('reviewer'), async (req, res) => {
    const sha = String(req.params.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new HttpError(400, 'invalid_sha256', 'an image is named by its sha256 (64 hex digits)');
    const known = await deps.db.query(
      // Overlays: anomaly maps and masks are PNGs, detection boxes a JSON document.
      `SELECT media_type FROM inspection_images WHERE sha256 = $1
       UNION ALL SELECT CASE kind WHEN 'boxes' THEN 'application/json' ELSE 'image/png' END FROM inspection_artifacts WHERE sha256 = $1
       LIMIT 1`, [sha]);
    if (!known.rows[0]) throw new HttpError(404, 'not_found', `no image ${sha}`);
    res.type(known.rows[0].media_type).set('Cache-Control', 'private, max-age=31536000, immutable').send(await deps.images.get(sha));
  });

  return router;
}

/**
 * A disposition is an electronic signature (21 CFR 11.200): an account with a password signs by
 * entering it again. Accounts without one (API integrations) sign with their token, and the
 * record says so.
 */
async function signer(db: Database, username: string, password: string | undefined): Promise<Signer> {
  const person = await findPerson(db, username);
  if (!person) throw new HttpError(403, 'forbidden', `no user "${username}"`);
  if (person.passwordHash === null) {
    if (password !== undefined) throw new HttpError(403, 'invalid_signature', 'this account has no password; sign with its API token alone');
    return { username, name: person.name, method: 'token' };
  }
  if (password === undefined) throw new HttpError(403, 'invalid_signature', 'sign the disposition: enter your password');
  if (!(await passwordMatches(password, person.passwordHash))) throw new HttpError(403, 'invalid_signature', 'the password is not correct; the disposition was not signed');
  return { username, name: person.name, method: 'password' };
}

async function acceptUpload(deps: InspectionRoutesDeps, station: { stationId: string; site: string; line: string }, req: Request, idempotencyKey: string | null) {
  const received: ReceivedImage[] = Array.isArray(req.files)
    ? req.files.map((f) => ({ bytes: f.buffer }))
    : Buffer.isBuffer(req.body) ? [{ bytes: req.body }] : [];
  if (received.length === 0) throw new HttpError(400, 'missing_image', 'no image: send file parts named "image" or a raw image body');

  const source = req.is('multipart/form-data') ? req.body ?? {} : req.query;
  const multiValued = Object.entries(source).find(([, v]) => Array.isArray(v));
  if (multiValued) throw new HttpError(400, 'invalid_field', `field "${multiValued[0]}" is given more than once`);
  const fields = uploadFieldsSchema.safeParse(source);
  if (!fields.success) throw new HttpError(400, 'invalid_field', describeIssues(fields.error).join('; '));

  const context = await findStationContext(deps.db, station.stationId);
  const partNumber = fields.data.partNumber ?? context?.partNumber ?? null;
  const lotId = fields.data.lotId ?? context?.lotId ?? null;
  const operation = fields.data.operation ?? context?.operation ?? null;
  const workOrder = fields.data.workOrder ?? context?.workOrder ?? null;
  const missing = [!partNumber && 'partNumber', !lotId && 'lotId'].filter(Boolean);
  if (missing.length) throw new HttpError(400, 'missing_field', `${missing.join(' and ')} missing, and the station's MES context does not supply ${missing.length > 1 ? 'them' : 'it'}`);

  const plan = await findCurrentPlan(deps.db, partNumber!, operation);
  if (!plan) throw new HttpError(422, 'no_quality_plan', `no quality plan for part number "${partNumber}"${operation ? ` (operation "${operation}")` : ''}`);

  const inputs = deps.modelInputs([...new Set(plan.plan.characteristics.map((c) => c.model))]);
  const checked = [];
  for (const [i, img] of received.entries()) {
    const c = await checkImage(img.bytes, deps.limits.imagePixels, inputs);
    if (!c.ok) throw new HttpError(c.status, c.code, received.length > 1 ? `image ${i}: ${c.message}` : c.message);
    checked.push({ ...c, bytes: img.bytes });
  }

  const images = [];
  for (const c of checked) {
    const sha256 = await deps.images.put(c.bytes);
    for (const [key, raw] of c.prepared) await deps.prepared.put(sha256, key, raw);
    images.push({ sha256, mediaType: c.mediaType, width: c.width, height: c.height, exifOrientation: c.exifOrientation });
  }
  const recorded = await recordInspection(deps.db, {
    id: randomUUID(),
    stationId: station.stationId, site: station.site, line: station.line,
    serial: fields.data.serial, partNumber: partNumber!, lotId: lotId!, workOrder, operation,
    operator: fields.data.operator ?? null,
    capturedAt: fields.data.capturedAt ? new Date(fields.data.capturedAt) : new Date(),
    idempotencyKey,
    plan: { partNumber: plan.partNumber, operation: plan.operation ?? '', version: plan.version },
    images,
  });
  if (recorded.created) {
    // The inspection is durably recorded; if the queue is away the reconciler enqueues it later.
    await deps.enqueue(recorded.id).catch((err) => req.log.warn({ err, inspectionId: recorded.id }, 'enqueue failed; the reconciler will retry'));
  }
  return recorded;
}
