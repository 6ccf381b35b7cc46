import express, { Router, type Request } from 'express';
import multer from 'multer';
import { z } from 'zod';
import { passwordMatches } from '../access/passwords.js';
import type { Logger } from '../app/logger.js';
import type { Metrics } from '../app/metrics.js';
import type { Database } from '../db/database.js';
import { findIdempotencyKey, findInspection, listAwaitingReview, listPartHistory, recordDisposition, recordInspection } from '../db/inspections.js';
import { findCurrentPlan } from '../db/quality-plans.js';
import { FailedAttempts } from '../db/failed-attempts.js';
import { findStationContext } from '../db/stations.js';
import { findPerson } from '../db/users.js';
import { findImageForServing, pinImage, removalMessage, unpinImage } from '../db/stored-files.js';
import { GoneError, InvalidInputError, NotFoundError } from '../errors.js';
import type { ImageStore } from '../images/image-store.js';
import type { StorageGuard } from '../images/storage-guard.js';
import type { ModelInput } from '../inference/manifest.js';
import type { PreparedInputs } from '../inference/prepared-inputs.js';
import { acceptUpload, type AcceptUploadDeps } from '../inspection/accept-upload.js';
import type { DecodeSlots } from '../inspection/decode-slots.js';
import { disposeInspection } from '../inspection/dispose.js';
import { int32, note, text } from '../fields.js';
import { role, stationOnly, username } from './auth.js';
import { HttpError, parseOr400 } from './errors.js';
import { limitRate } from './rate-limits.js';
import { idempotencyKeySchema, uploadFieldsSchema } from './upload-fields.js';

export interface InspectionRoutesDeps {
  db: Database;
  images: ImageStore;
  enqueue: (inspectionId: string) => Promise<void>;
  /** Inspections waiting for a worker; uploads are refused (503) above `maxQueueDepth`. */
  queueDepth: () => Promise<number>;
  maxQueueDepth: number;
  /** How long an Idempotency-Key holds. */
  idempotencyKeyHours: number;
  captureTimeToleranceHours: number;
  stationRateLimit: number;
  /** Input specs of the models a plan names, and where their pixels are kept for the workers. */
  modelInputs: (modelIds: readonly string[]) => ModelInput[];
  prepared: PreparedInputs;
  limits: { imageBytes: number; imagePixels: number; imagesPerInspection: number; imageSide: number; imageAspect: number };
  decodeSlots: DecodeSlots;
  /** Refuses uploads (507) before the image store's disk is exhausted. */
  storage: Pick<StorageGuard, 'check' | 'recorded'>;
  metrics: Metrics;
  log: Logger;
}

const uuid = z.uuid();
const inspectionId = (req: Request) => {
  const id = String(req.params.id);
  if (!uuid.safeParse(id).success) throw new InvalidInputError('invalid_id', 'an inspection id is a UUID');
  return id;
};

export function inspectionRoutes(deps: InspectionRoutesDeps): Router {
  const router = Router();
  const multipart = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: deps.limits.imageBytes, files: deps.limits.imagesPerInspection, fields: 16, fieldSize: 4096, parts: deps.limits.imagesPerInspection + 16, headerPairs: 100 },
  }).array('image', deps.limits.imagesPerInspection);
  const rawImage = express.raw({ type: 'image/*', limit: deps.limits.imageBytes });
  const uploads: AcceptUploadDeps = {
    stationContext: (stationId) => findStationContext(deps.db, stationId),
    currentPlan: (partNumber, operation) => findCurrentPlan(deps.db, partNumber, operation),
    modelInputs: deps.modelInputs,
    checkStorage: (bytes) => deps.storage.check(bytes),
    storeImage: (bytes) => deps.images.put(bytes),
    storePrepared: (sha256, key, raw) => deps.prepared.put(sha256, key, raw),
    recordInspection: (inspection, idempotency, restore) => recordInspection(deps.db, inspection, idempotency, restore),
    findIdempotencyKey: (stationId, key) => findIdempotencyKey(deps.db, stationId, key),
    idempotencyKeySeconds: deps.idempotencyKeyHours * 3600,
    captureTimeToleranceSeconds: deps.captureTimeToleranceHours * 3600,
    queueDepth: deps.queueDepth,
    maxQueueDepth: deps.maxQueueDepth,
    enqueue: deps.enqueue,
    decodeSlot: (stationId, decode) => deps.decodeSlots.run(stationId, decode),
    imageLimits: { pixels: deps.limits.imagePixels, side: deps.limits.imageSide, aspect: deps.limits.imageAspect },
    log: deps.log,
  };

  const perStation = limitRate({
    windowSeconds: 1,
    limit: deps.stationRateLimit,
    key: (req) => (req.principal as { stationId: string }).stationId,
    message: `more than ${deps.stationRateLimit} uploads per second from this station`,
  });
  // A full store refuses before the body is read (the use case checks again with the images' sizes).
  const storageRoom = async (_req: Request, _res: unknown, next: () => void) => {
    await deps.storage.check(0);
    next();
  };

  router.post('/inspections', stationOnly, perStation, storageRoom, (req, res, next) => {
    if (req.is('multipart/form-data')) return multipart(req, res, next);
    if (req.is('image/*')) return rawImage(req, res, next);
    throw new HttpError(415, 'unsupported_media_type', 'send multipart/form-data with "image" file parts, or a raw image body with an image/* Content-Type');
  }, async (req, res) => {
    const images = Array.isArray(req.files) ? req.files.map((f) => f.buffer) : Buffer.isBuffer(req.body) ? [req.body] : [];
    const source = req.is('multipart/form-data') ? req.body ?? {} : req.query;
    const multiValued = Object.entries(source).find(([, v]) => Array.isArray(v));
    if (multiValued) throw new InvalidInputError('invalid_field', `field "${multiValued[0]}" is given more than once`);
    const fields = parseOr400(uploadFieldsSchema, source, 'invalid_field');
    const keyHeader = req.get('idempotency-key');
    const idempotencyKey = keyHeader === undefined ? null : parseOr400(idempotencyKeySchema, keyHeader, 'invalid_idempotency_key');
    const station = req.principal as Extract<Request['principal'], { kind: 'station' }>;
    const accepted = await acceptUpload(uploads, { station, images, fields, idempotencyKey });
    res.locals.inspectionId = accepted.id;
    deps.metrics.uploads.inc({ outcome: accepted.created ? 'accepted' : 'repeated' });
    // Now that the upload is in the store's index, the pruner sees it if woken.
    if (accepted.created) await deps.storage.recorded().catch((err: Error) => req.log.warn({ err: err.message }, 'cannot read the image store\'s size'));
    // A repeat shows the station what its 202 showed, nothing of the verdict, signer or reason.
    res.status(accepted.created ? 202 : 200).location(`/v1/inspections/${accepted.id}`).json({ id: accepted.id, status: accepted.status });
  });

  router.get('/inspections/:id', role('reviewer'), async (req, res) => {
    const id = inspectionId(req);
    res.locals.inspectionId = id;
    const doc = await findInspection(deps.db, id);
    if (!doc) throw new NotFoundError('not_found', `no inspection ${id}`);
    res.json(doc);
  });

  router.get('/inspections', role('reviewer'), async (req, res) => {
    // A part's history: the query names the part (part number and serial).
    const q = parseOr400(z.object({ partNumber: text(64), serial: text(128), limit: int32().min(1).max(500).default(50) }), req.query, 'invalid_query');
    res.json({ inspections: await listPartHistory(deps.db, q.partNumber, q.serial, q.limit) });
  });

  router.get('/review', role('reviewer'), async (req, res) => {
    const q = parseOr400(z.object({
      line: text(64).optional(), stationId: text(64).optional(), partNumber: text(64).optional(),
      lotId: text(128).optional(), olderThanSeconds: int32().min(0).optional(),
      limit: int32().min(1).max(500).default(100),
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
    store: new FailedAttempts(deps.db, 'signature:'),
  });

  router.post('/inspections/:id/disposition', role('reviewer'), failedSignatures, express.json({ limit: '16kb' }), async (req, res) => {
    const id = inspectionId(req);
    res.locals.inspectionId = id;
    const body = parseOr400(z.object({
      decision: z.enum(['accept', 'rework', 'scrap']),
      reason: note(2000),
      password: z.string().min(1).max(1024).optional(),
    }).strict(), req.body, 'invalid_disposition');
    const document = await disposeInspection(
      { findPerson: (u) => findPerson(deps.db, u), passwordMatches, recordDisposition: (...a) => recordDisposition(deps.db, ...a) },
      { inspectionId: id, username: username(req), ...body },
    ).catch((err) => {
      if (err.name === 'SignatureError') req.log.warn({ username: username(req), inspectionId: id }, 'disposition signature refused');
      throw err;
    });
    req.log.info({ inspectionId: id, decision: body.decision }, 'disposition recorded');
    res.json(document);
  });

  const imageSha = (req: Request) => {
    const sha = String(req.params.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new InvalidInputError('invalid_sha256', 'an image is named by its sha256 (64 hex digits)');
    return sha;
  };

  router.get('/images/:sha256', role('reviewer'), async (req, res) => {
    const sha = imageSha(req);
    const image = await findImageForServing(deps.db, sha);
    if (!image) throw new NotFoundError('not_found', `no image ${sha}`);
    if (image.removed) throw new GoneError('image_removed', removalMessage(sha, image.removed));
    res.type(image.mediaType).set('Cache-Control', 'private, max-age=31536000, immutable').send(await deps.images.get(sha));
  });

  // "Keep this image": evidence a person wants kept whatever the retention policy says.
  router.put('/images/:sha256/pin', role('reviewer'), express.json({ limit: '16kb' }), async (req, res) => {
    const sha = imageSha(req);
    const body = parseOr400(z.object({ reason: note(2000) }).strict(), req.body, 'invalid_pin');
    res.json({ sha256: sha, pinned: await pinImage(deps.db, username(req), sha, body.reason) });
  });

  router.delete('/images/:sha256/pin', role('reviewer'), async (req, res) => {
    const sha = imageSha(req);
    const q = parseOr400(z.object({ reason: note(2000).optional() }), req.query, 'invalid_query');
    await unpinImage(deps.db, username(req), sha, q.reason ?? null);
    res.json({ sha256: sha, pinned: null });
  });

  return router;
}
