import { randomUUID } from 'node:crypto';
import type { Logger } from '../app/logger.js';
import { DomainError, InvalidInputError, NoQualityPlanError } from '../errors.js';
import { checkImage, type CheckedImage, type ImageLimits } from '../inference/input-check.js';
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
  storeImage(bytes: Buffer): Promise<string>;
  storePrepared(imageSha256: string, pixelsKey: string, raw: Uint8Array): Promise<void>;
  recordInspection(inspection: NewInspection): Promise<{ id: string; created: boolean }>;
  enqueue(inspectionId: string): Promise<void>;
  /** Runs the decoding of one upload's images within the station's and the process's share (DecodeSlots). */
  decodeSlot<T>(stationId: string, decode: () => Promise<T>): Promise<T>;
  imageLimits: ImageLimits;
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

  const images = [];
  for (const c of checked) {
    const sha256 = await deps.storeImage(c.bytes);
    for (const [key, raw] of c.prepared) await deps.storePrepared(sha256, key, raw);
    images.push({ sha256, mediaType: c.mediaType, width: c.width, height: c.height, exifOrientation: c.exifOrientation });
  }
  const recorded = await deps.recordInspection({
    id: randomUUID(),
    stationId: upload.station.stationId, site: upload.station.site, line: upload.station.line,
    serial: fields.serial, partNumber, lotId, workOrder, operation,
    operator: fields.operator ?? null,
    capturedAt: fields.capturedAt ? new Date(fields.capturedAt) : new Date(),
    idempotencyKey: upload.idempotencyKey,
    plan: { partNumber: plan.partNumber, operation: plan.operation ?? '', version: plan.version },
    images,
  });
  if (recorded.created) {
    // The inspection is durably recorded; if the queue is away the reconciler enqueues it later.
    await deps.enqueue(recorded.id).catch((err) => deps.log.warn({ err, inspectionId: recorded.id }, 'enqueue failed; the reconciler will retry'));
  }
  return recorded;
}
