import { createHash, randomUUID } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { Logger } from '../app/logger.js';
import { DomainError, InvalidInputError, NoQualityPlanError, OverloadedError, UnprocessableError } from '../errors.js';
import { checkImage, type CheckedImage, type ImageLimits } from '../inference/input-check.js';
import type { ModelInput } from '../inference/manifest.js';
import type { QualityPlan } from '../quality/quality-plan.js';
import type { IdempotencyKey, NewInspection } from '../db/inspections.js';
import type { InspectionDocument } from './inspection-document.js';
import type { StationContext } from './trace-fields.js';

/** The fields a camera sends with its image(s), validated by the HTTP layer (CONTRACT.md `POST /v1/inspections`). */
export interface UploadFields {
  serial: string;
  partNumber?: string;
  lotId?: string;
  workOrder?: string;
  operation?: string;
  operator?: string;
  capturedAt?: string;
}

export interface Upload {
  station: { stationId: string; site: string; line: string };
  images: Buffer[];
  fields: UploadFields;
  idempotencyKey: string | null;
}

/** What accepting an upload needs of the rest of visq. */
export interface AcceptUploadDeps {
  stationContext(stationId: string): Promise<StationContext | null>;
  currentPlan(partNumber: string, operation: string | null): Promise<{ partNumber: string; operation: string | null; version: number; plan: QualityPlan } | null>;
  /** The models' input specs, so the decoding that checks an image also makes the models' pixels. */
  modelInputs(modelIds: readonly string[]): ModelInput[];
  /** Throws InsufficientStorageError (507) when the image store has no room for `bytes` more. */
  checkStorage(bytes: number): Promise<void>;
  storeImage(bytes: Buffer): Promise<string>;
  storePrepared(imageSha256: string, pixelsKey: string, raw: Uint8Array): Promise<void>;
  /**
   * Records the inspection and its key; `created: false` (nothing recorded) when the key is held by
   * another request. `restore` stores again images that the pruner removed since they were stored
   * (the same bytes posted earlier).
   */
  recordInspection(inspection: NewInspection, idempotency: IdempotencyKey | null, restore: (sha256s: string[]) => Promise<void>): Promise<{ id: string; created: boolean }>;
  /** The request a station's unexpired key was first used for. */
  findIdempotencyKey(stationId: string, key: string): Promise<{ inspectionId: string; requestHash: string; status: InspectionDocument['status'] } | null>;
  /** How long a key holds (CONTRACT.md: a repeat within it is answered with the first inspection). */
  idempotencyKeySeconds: number;
  /** How far a camera's capture time may lie from the time its upload arrives (clocks drift; year 0001 is garbage). */
  captureTimeToleranceSeconds: number;
  /** Inspections waiting for a worker, and above how many uploads are turned away. */
  queueDepth(): Promise<number>;
  maxQueueDepth: number;
  enqueue(inspectionId: string): Promise<void>;
  /** Runs the decoding of one upload's images within the station's and the process's share (DecodeSlots). */
  decodeSlot<T>(stationId: string, decode: () => Promise<T>): Promise<T>;
  imageLimits: ImageLimits;
  log: Logger;
}

/** What a station learns of its upload: the inspection and where it stands (the `202`, or a repeat's `200`). */
export interface Accepted { id: string; status: InspectionDocument['status']; created: boolean }

/**
 * A camera's upload becomes a recorded inspection (CONTRACT.md `POST /v1/inspections`). A repeat of
 * an `Idempotency-Key` with the same request is answered with the first inspection, whatever the
 * load; the same key with another request is refused (422), never answered with the first part.
 * Then: backpressure, fields the upload omits from the station's MES context, the part's quality
 * plan, each image decoded under the limits (which also makes the models' input pixels), the images
 * stored, and the inspection recorded before its job is queued. Nothing is recorded when anything
 * is refused.
 */
export async function acceptUpload(deps: AcceptUploadDeps, upload: Upload): Promise<Accepted> {
  if (upload.images.length === 0) throw new InvalidInputError('missing_image', 'no image: send file parts named "image" or a raw image body');
  const { fields } = upload;
  const receivedAt = new Date();
  const capturedAt = fields.capturedAt ? new Date(fields.capturedAt) : receivedAt;
  if (Math.abs(capturedAt.getTime() - receivedAt.getTime()) > deps.captureTimeToleranceSeconds * 1000) {
    throw new InvalidInputError('invalid_field', `capturedAt ${fields.capturedAt} is more than ${Math.round(deps.captureTimeToleranceSeconds / 3600)} h from the time the upload arrived (${receivedAt.toISOString()}): check the camera's clock`);
  }
  const idempotency = upload.idempotencyKey === null ? null : { key: upload.idempotencyKey, requestHash: requestHash(upload), ttlSeconds: deps.idempotencyKeySeconds };
  if (idempotency) {
    const earlier = await repeatOf(deps, upload.station.stationId, idempotency);
    if (earlier) return earlier;
  }
  const depth = await deps.queueDepth();
  if (depth > deps.maxQueueDepth) throw new OverloadedError(`${depth} inspections are waiting for a worker (limit ${deps.maxQueueDepth}); retry later`, 5);
  const context = await deps.stationContext(upload.station.stationId);
  const partNumber = fields.partNumber ?? context?.partNumber ?? null;
  const lotId = fields.lotId ?? context?.lotId ?? null;
  const operation = fields.operation ?? context?.operation ?? null;
  const workOrder = fields.workOrder ?? context?.workOrder ?? null;
  if (!partNumber || !lotId) {
    const missing = [!partNumber && 'partNumber', !lotId && 'lotId'].filter(Boolean);
    throw new InvalidInputError('missing_field', `${missing.join(' and ')} missing, and the station's MES context does not supply ${missing.length > 1 ? 'them' : 'it'}`);
  }

  const plan = await deps.currentPlan(partNumber, operation);
  if (!plan) throw new NoQualityPlanError(`no quality plan for part number "${partNumber}"${operation ? ` (operation "${operation}")` : ''}`);

  const inputs = deps.modelInputs([...new Set(plan.plan.characteristics.map((c) => c.model))]);
  const checked = await deps.decodeSlot(upload.station.stationId, async () => {
    const images: (CheckedImage & { bytes: Buffer })[] = [];
    for (const [i, bytes] of upload.images.entries()) {
      try {
        images.push({ ...(await checkImage(bytes, deps.imageLimits, inputs)), bytes });
      } catch (err) {
        // With several views, say which one.
        if (err instanceof DomainError && upload.images.length > 1) err.message = `image ${i}: ${err.message}`;
        throw err;
      }
    }
    return images;
  });

  // Refused before anything is written: no half-stored upload when the store is full.
  await deps.checkStorage(checked.reduce((sum, c) => sum + c.bytes.length + [...c.prepared.values()].reduce((n, raw) => n + raw.length, 0), 0));
  const images = [];
  const bytesBySha = new Map<string, Buffer>();
  for (const c of checked) {
    const sha256 = await deps.storeImage(c.bytes);
    bytesBySha.set(sha256, c.bytes);
    const prepared = { keys: [] as string[], bytes: 0 };
    for (const [key, raw] of c.prepared) {
      // Prepared pixels only spare the worker a decode: one that cannot be written is done without.
      try {
        await deps.storePrepared(sha256, key, raw);
        prepared.keys.push(key);
        prepared.bytes += raw.length;
      } catch (err) {
        deps.log.warn({ err, sha256, pixelsKey: key }, 'cannot keep the prepared model input; the worker will decode the image');
      }
    }
    images.push({ sha256, mediaType: c.mediaType, width: c.width, height: c.height, exifOrientation: c.exifOrientation, bytes: c.bytes.length, prepared });
  }
  const restore = async (shas: string[]) => { for (const sha of shas) await deps.storeImage(bytesBySha.get(sha)!); };
  const recorded = await deps.recordInspection({
    id: randomUUID(),
    stationId: upload.station.stationId, site: upload.station.site, line: upload.station.line,
    serial: fields.serial, partNumber, lotId, workOrder, operation,
    operator: fields.operator ?? null,
    capturedAt,
    plan: { partNumber: plan.partNumber, operation: plan.operation ?? '', version: plan.version },
    images,
  }, idempotency, restore);
  if (!recorded.created) {
    // A concurrent request took the key a moment ago: answer as its repeat.
    const earlier = idempotency && (await repeatOf(deps, upload.station.stationId, idempotency));
    if (!earlier) throw new Error(`inspection ${recorded.id} was not recorded, and its Idempotency-Key holds no other request`);
    return earlier;
  }
  // The inspection is durably recorded; if the queue is away the reconciler enqueues it later.
  await deps.enqueue(recorded.id).catch((err) => deps.log.warn({ err, inspectionId: recorded.id }, 'enqueue failed; the reconciler will retry'));
  return { id: recorded.id, status: 'queued', created: true };
}

/**
 * What makes two uploads the same request: their fields and their images' bytes (hashed), as RFC
 * 8785 canonical JSON — as the IETF idempotency-key draft and Stripe compare a key's requests.
 */
export function requestHash(upload: Pick<Upload, 'fields' | 'images'>): string {
  const images = upload.images.map((b) => createHash('sha256').update(b).digest('hex'));
  return createHash('sha256').update(canonicalize({ fields: upload.fields, images })!).digest('hex');
}

/** The earlier inspection of a repeated request, or null when the key is free; 422 when it names another request. */
async function repeatOf(deps: AcceptUploadDeps, stationId: string, key: IdempotencyKey): Promise<Accepted | null> {
  const earlier = await deps.findIdempotencyKey(stationId, key.key);
  if (!earlier) return null;
  // Keys recorded before requests were hashed (an empty hash) are answered as repeats until they expire.
  if (earlier.requestHash !== '' && earlier.requestHash !== key.requestHash) {
    throw new UnprocessableError('idempotency_key_reused', `Idempotency-Key "${key.key}" was used within the last ${Math.round(deps.idempotencyKeySeconds / 3600)} h for another request (other fields or images); send each part with a key of its own`);
  }
  return { id: earlier.inspectionId, status: earlier.status, created: false };
}
