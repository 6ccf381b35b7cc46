import { randomUUID } from 'node:crypto';
import type { Logger } from '../app/logger.js';
import { DomainError, InvalidInputError, NoQualityPlanError } from '../errors.js';
import { checkImage, type CheckedImage } from '../inference/input-check.js';
import type { ModelInput } from '../inference/manifest.js';
import type { QualityPlan } from '../quality/quality-plan.js';
import type { NewInspection } from '../db/inspections.js';
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
  /** Records the inspection; `restore` stores again images that the pruner removed since they were stored (same bytes posted earlier). */
  recordInspection(inspection: NewInspection, restore: (sha256s: string[]) => Promise<void>): Promise<{ id: string; created: boolean }>;
  enqueue(inspectionId: string): Promise<void>;
  maxPixels: number;
  log: Logger;
}

/**
 * A camera's upload becomes a recorded inspection (CONTRACT.md `POST /v1/inspections`): fields the
 * upload omits come from the station's MES context, the part's quality plan is found, each image is
 * decoded under the pixel limit (which also makes the models' input pixels), the images are stored,
 * and the inspection is recorded before its job is queued. A repeat of an `Idempotency-Key` gives
 * the earlier inspection (`created: false`). Nothing is recorded when anything is refused.
 */
export async function acceptUpload(deps: AcceptUploadDeps, upload: Upload): Promise<{ id: string; created: boolean }> {
  if (upload.images.length === 0) throw new InvalidInputError('missing_image', 'no image: send file parts named "image" or a raw image body');
  const { fields } = upload;
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
  const checked: (CheckedImage & { bytes: Buffer })[] = [];
  for (const [i, bytes] of upload.images.entries()) {
    try {
      checked.push({ ...(await checkImage(bytes, deps.maxPixels, inputs)), bytes });
    } catch (err) {
      // With several views, say which one.
      if (err instanceof DomainError && upload.images.length > 1) err.message = `image ${i}: ${err.message}`;
      throw err;
    }
  }

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
    capturedAt: fields.capturedAt ? new Date(fields.capturedAt) : new Date(),
    idempotencyKey: upload.idempotencyKey,
    plan: { partNumber: plan.partNumber, operation: plan.operation ?? '', version: plan.version },
    images,
  }, restore);
  if (recorded.created) {
    // The inspection is durably recorded; if the queue is away the reconciler enqueues it later.
    await deps.enqueue(recorded.id).catch((err) => deps.log.warn({ err, inspectionId: recorded.id }, 'enqueue failed; the reconciler will retry'));
  }
  return recorded;
}
