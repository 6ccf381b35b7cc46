import sharp from 'sharp';
import { describe, expect, it, vi } from 'vitest';
import type { NewInspection } from '../../src/db/inspections.js';
import { modelInputSchema } from '../../src/inference/manifest-fields.js';
import { acceptUpload, type AcceptUploadDeps, type Upload } from '../../src/inspection/accept-upload.js';
import { InsufficientStorageError } from '../../src/errors.js';
import { createLogger } from '../../src/app/logger.js';
import type { QualityPlan } from '../../src/quality/quality-plan.js';

const png = (w = 32, h = 24) => sharp({ create: { width: w, height: h, channels: 3, background: { r: 200, g: 100, b: 50 } } }).png().toBuffer();
const plan: QualityPlan = { partNumber: 'PN-1', operation: null, confirmFail: false, characteristics: [{ name: 'c', model: 'm', measure: 'anomaly_score', lsl: null, usl: 0.5, guardBand: 0, severity: 'major' }] };

/** In-memory stand-ins for the store, the database and the queue, recording what the use case did. */
function fakes(over: Partial<AcceptUploadDeps> = {}) {
  const stored: Buffer[] = [];
  const prepared: string[] = [];
  const recorded: NewInspection[] = [];
  const enqueued: string[] = [];
  const keys = new Map<string, { inspectionId: string; requestHash: string; status: 'queued' | 'running' | 'done' }>();
  const checked: number[] = [];
  const deps: AcceptUploadDeps = {
    stationContext: async () => null,
    currentPlan: async (partNumber) => (partNumber === 'PN-1' ? { partNumber: 'PN-1', operation: null, version: 3, plan } : null),
    modelInputs: (ids) => (ids.includes('m') ? [modelInputSchema().parse({ name: 'input', width: 16, height: 16 })] : []),
    checkStorage: async (bytes) => { checked.push(bytes); },
    storeImage: async (bytes) => { stored.push(bytes); return `sha-${stored.length}`; },
    storePrepared: async (sha, key) => { prepared.push(`${sha}/${key}`); },
    recordInspection: async (ins, idempotency) => {
      if (idempotency && keys.has(idempotency.key)) return { id: ins.id, created: false };
      recorded.push(ins);
      if (idempotency) keys.set(idempotency.key, { inspectionId: ins.id, requestHash: idempotency.requestHash, status: 'queued' });
      return { id: ins.id, created: true };
    },
    findIdempotencyKey: async (_station, key) => keys.get(key) ?? null,
    idempotencyKeySeconds: 24 * 3600,
    captureTimeToleranceSeconds: 24 * 3600,
    queueDepth: async () => 0,
    maxQueueDepth: 100,
    enqueue: async (id) => { enqueued.push(id); },
    decodeSlot: (_station, decode) => decode(),
    imageLimits: { pixels: 1e6, side: 10_000, aspect: 20 },
    log: createLogger('silent', {}, 2),
    ...over,
  };
  return { deps, stored, prepared, recorded, enqueued, checked };
}

const upload = async (over: Partial<Upload> = {}): Promise<Upload> => ({
  station: { stationId: 'cam-1', site: 'site1', line: 'line-a' },
  images: [await png()],
  fields: { serial: 'SN-1', partNumber: 'PN-1', lotId: 'LOT-1' },
  idempotencyKey: null,
  ...over,
});

describe('accepting an upload', () => {
  it('stores the images and the models’ pixels, records the inspection with its plan version, then queues it', async () => {
    const f = fakes();
    const r = await acceptUpload(f.deps, await upload({ images: [await png(), await png(40, 30)], idempotencyKey: 'k-1' }));
    expect(r).toMatchObject({ created: true, status: 'queued' });
    expect(f.stored).toHaveLength(2);
    expect(f.prepared).toEqual(['sha-1/16x16-srgb-stretch-lanczos3', 'sha-2/16x16-srgb-stretch-lanczos3']);
    expect(f.recorded[0]).toMatchObject({
      stationId: 'cam-1', site: 'site1', line: 'line-a', serial: 'SN-1', partNumber: 'PN-1', lotId: 'LOT-1',
      plan: { partNumber: 'PN-1', operation: '', version: 3 },
      images: [
        { sha256: 'sha-1', mediaType: 'image/png', width: 32, height: 24, exifOrientation: null, bytes: f.stored[0]!.length, prepared: { keys: ['16x16-srgb-stretch-lanczos3'], bytes: 16 * 16 * 3 } },
        { sha256: 'sha-2', width: 40, height: 30, bytes: f.stored[1]!.length },
      ],
    });
    expect(f.enqueued).toEqual([r.id]);
    // Room for the images and their prepared pixels was asked for once, before anything was stored.
    expect(f.checked).toEqual([f.stored[0]!.length + f.stored[1]!.length + 2 * 16 * 16 * 3]);
  });

  it('a full store refuses the upload before anything is stored or recorded', async () => {
    const f = fakes({ checkStorage: async () => { throw new InsufficientStorageError('the image store holds 1 GiB of its 1 GiB quota', 10); } });
    await expect(acceptUpload(f.deps, await upload())).rejects.toThrow(expect.objectContaining({ name: 'InsufficientStorageError', code: 'insufficient_storage', retryAfterSeconds: 10 }));
    expect([f.stored, f.prepared, f.recorded, f.enqueued]).toEqual([[], [], [], []]);
  });

  it('an image the pruner removed since it was stored (the same bytes posted earlier) is stored again before the inspection is recorded', async () => {
    const restored: string[] = [];
    const f = fakes({
      recordInspection: async (ins, _idempotency, restore) => { await restore([ins.images[1]!.sha256]); restored.push(...ins.images.map((i) => i.sha256)); return { id: ins.id, created: true }; },
    });
    const first = await png();
    const second = await png(40, 30);
    await acceptUpload(f.deps, await upload({ images: [first, second] }));
    // Stored twice: once before recording, once again when the record found it removed.
    expect(f.stored.map((b) => b.length)).toEqual([first.length, second.length, second.length]);
    expect(f.stored[2]!.equals(second)).toBe(true);
    expect(restored).toEqual(['sha-1', 'sha-2']);
  });

  it('prepared pixels that cannot be written are done without: the upload is still accepted', async () => {
    const f = fakes({ storePrepared: async () => { throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }); }, log: createLogger('silent', {}, 2) });
    const r = await acceptUpload(f.deps, await upload());
    expect(r.created).toBe(true);
    expect(f.recorded[0]!.images[0]!.prepared).toEqual({ keys: [], bytes: 0 });
  });

  it('takes the fields the upload omits from the station’s MES context', async () => {
    const f = fakes({ stationContext: async () => ({ partNumber: 'PN-1', lotId: 'LOT-CTX', workOrder: 'WO-7', operation: null }) });
    await acceptUpload(f.deps, await upload({ fields: { serial: 'SN-2' } }));
    expect(f.recorded[0]).toMatchObject({ partNumber: 'PN-1', lotId: 'LOT-CTX', workOrder: 'WO-7' });
  });

  it.each([
    ['no image', { images: [] }, { name: 'InvalidInputError', code: 'missing_image' }],
    ['no part number anywhere', { fields: { serial: 'SN', lotId: 'L' } }, { name: 'InvalidInputError', code: 'missing_field', message: expect.stringMatching(/^partNumber missing/) }],
    ['neither part number nor lot', { fields: { serial: 'SN' } }, { code: 'missing_field', message: expect.stringMatching(/^partNumber and lotId missing, and the station's MES context does not supply them/) }],
    ['a capture time in year 0001', { fields: { serial: 'SN', partNumber: 'PN-1', lotId: 'L', capturedAt: '0001-01-01T00:00:00Z' } }, { code: 'invalid_field', message: expect.stringMatching(/capturedAt 0001-01-01T00:00:00Z is more than 24 h from the time the upload arrived/) }],
    ['a capture time in year 9999', { fields: { serial: 'SN', partNumber: 'PN-1', lotId: 'L', capturedAt: '9999-12-31T23:59:59Z' } }, { code: 'invalid_field' }],
    ['a part without a plan', { fields: { serial: 'SN', partNumber: 'PN-X', lotId: 'L' } }, { name: 'NoQualityPlanError', code: 'no_quality_plan' }],
  ])('refuses %s, storing and recording nothing', async (_name, over, error) => {
    const f = fakes();
    await expect(acceptUpload(f.deps, await upload(over as Partial<Upload>))).rejects.toThrow(expect.objectContaining(error));
    expect([f.stored, f.recorded, f.enqueued]).toEqual([[], [], []]);
  });

  it('refuses a part when any one of its images is unusable, naming which, and stores none of them', async () => {
    const f = fakes();
    const truncated = (await png(64, 64)).subarray(0, 60);
    await expect(acceptUpload(f.deps, await upload({ images: [await png(), truncated] }))).rejects.toThrow(expect.objectContaining({ name: 'UnsupportedImageError', message: expect.stringMatching(/^image 1: /) }));
    expect([f.stored, f.recorded]).toEqual([[], []]);
  });

  it('a repeat of a request with its Idempotency-Key gives the earlier inspection, even when overloaded, and records nothing new', async () => {
    const f = fakes();
    const first = await acceptUpload(f.deps, await upload({ idempotencyKey: 'k' }));
    f.deps.queueDepth = async () => 1e6;
    expect(await acceptUpload(f.deps, await upload({ idempotencyKey: 'k' }))).toEqual({ id: first.id, status: 'queued', created: false });
    expect([f.recorded.length, f.enqueued.length]).toEqual([1, 1]);
  });

  it('the same Idempotency-Key with another part is refused (422), never answered with the first part', async () => {
    const f = fakes();
    await acceptUpload(f.deps, await upload({ idempotencyKey: 'k' }));
    for (const other of [{ fields: { serial: 'SN-OTHER', partNumber: 'PN-1', lotId: 'LOT-1' } }, { images: [await png(33, 24)] }]) {
      await expect(acceptUpload(f.deps, await upload({ idempotencyKey: 'k', ...other }))).rejects.toThrow(expect.objectContaining({ name: 'UnprocessableError', code: 'idempotency_key_reused' }));
    }
    expect(f.recorded).toHaveLength(1);
  });

  it('answers a concurrent repeat that took the key first as that repeat', async () => {
    const f = fakes();
    const u = await upload({ idempotencyKey: 'k' });
    const [a, b] = await Promise.all([acceptUpload(f.deps, u), acceptUpload(f.deps, u)]);
    expect(a.id).toBe(b.id);
    expect([a.created, b.created].sort()).toEqual([false, true]);
  });

  it('turns uploads away while too many inspections wait for a worker (503 with Retry-After)', async () => {
    const f = fakes({ queueDepth: async () => 101 });
    await expect(acceptUpload(f.deps, await upload())).rejects.toThrow(expect.objectContaining({ name: 'OverloadedError', retryAfterSeconds: 5 }));
    expect(f.stored).toEqual([]);
  });

  it('an upload is accepted when the queue is away: it is recorded, and the reconciler queues it later', async () => {
    const warn = vi.fn();
    const f = fakes({ enqueue: async () => { throw new Error('Connection is closed.'); }, log: { warn } as never });
    const r = await acceptUpload(f.deps, await upload());
    expect(r.created).toBe(true);
    expect(f.recorded).toHaveLength(1);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ inspectionId: r.id }), 'enqueue failed; the reconciler will retry');
  });
});
