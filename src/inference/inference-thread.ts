/**
 * Runs in a worker thread (piscina): onnxruntime-node's session.run blocks its thread, so it must
 * never run on the event loop that serves HTTP and the queue. Sessions load once per thread, and
 * each is run once on a generated image before the thread takes work, so the first part after a
 * start does not pay for the session's set-up.
 */
import { workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { FilesystemImageStore } from '../images/image-store.js';
import { PreparedInputs } from './prepared-inputs.js';
import { dryRun, outOfRange } from './dry-run.js';
import { measureSpecs, taskOf, type Manifest } from './manifest.js';
import { geometryFor, pixelCount, pixelsKey, pixelsToTensor, preparePixels, UnusableImageError, type PreparedPixels } from './preprocess.js';
import type { TaskOverlay } from './tasks/types.js';

export interface InferenceThreadData {
  imageDir: string;
  preparedDir: string;
  maxPixels: number;
  models: { manifest: Manifest; onnxPath: string }[];
}

export interface InferenceTask { images: { sha256: string; width: number; height: number }[]; models: string[] }

export type InferenceResult =
  | {
      ok: true;
      /** Per image: model id → measure → value. */
      views: Record<string, Record<string, number>>[];
      /** Per image: model id → measure → why its value cannot be trusted (outside what the model promises). */
      problems: Record<string, Record<string, string>>[];
      /** `data`: the overlay's bytes, stored already; kept until the decision is recorded, should they have to be stored again. */
      overlays: { view: number; model: string; kind: string; sha256: string; bytes: number; data: Uint8Array }[];
      preprocessMs: number;
      inferenceMs: number;
    }
  /** The image cannot be used by a model: retrying will not help. */
  | { ok: false; reason: string };

const data = workerData as InferenceThreadData;
// Each inference thread is one unit of CPU; libvips threads of its own would only contend with the others.
sharp.concurrency(1);
sharp.cache(false);
const store = new FilesystemImageStore(data.imageDir);
const preparedInputs = new PreparedInputs(data.preparedDir);
const models = new Map(data.models.map((m) => [m.manifest.id, { ...m, specs: measureSpecs(m.manifest) }]));

// One inference thread per core: more intra-op threads would only contend with the other inference threads.
const sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
const sessions = new Map(data.models.map((m) => [m.manifest.id, ort.InferenceSession.create(m.onnxPath, sessionOptions)]));
const warmedUp = Promise.all(data.models.map(async (m) => dryRun(await sessions.get(m.manifest.id)!, m.manifest)));

/** Resolves when this thread's sessions are loaded and have run once (InferencePool.warmUp). */
export async function warmUp(): Promise<void> {
  await warmedUp;
}

function sessionFor(id: string): Promise<ort.InferenceSession> {
  const s = sessions.get(id);
  if (!s) throw new Error(`model "${id}" is not in this worker's registry`);
  return s;
}

/**
 * An overlay's bytes for the content-addressed store: 8-bit grey images as PNG (`anomaly_map`,
 * `mask`), documents as UTF-8 JSON (`boxes`).
 */
async function overlayBytes(o: TaskOverlay): Promise<Buffer> {
  if (o.format === 'json') return Buffer.from(JSON.stringify(o.document), 'utf8');
  // b-w: a one-channel 8-bit PNG (sharp would otherwise write a single band as three).
  return sharp(Buffer.from(o.pixels.buffer, o.pixels.byteOffset, o.pixels.byteLength), { raw: { width: o.width, height: o.height, channels: 1 } })
    .toColourspace('b-w').png({ compressionLevel: 2 }).toBuffer();
}

/** The model's input pixels: as the API prepared them when it checked the upload, else decoded here. */
async function pixelsFor(image: InferenceTask['images'][number], input: Manifest['input'], original: () => Promise<Buffer>): Promise<PreparedPixels> {
  const raw = await preparedInputs.get(image.sha256, pixelsKey(input), pixelCount(input));
  if (raw) return { raw, geometry: geometryFor(input, image.width, image.height) };
  const bytes = await original(); // a store that cannot read is retried by the queue
  try {
    return await preparePixels(bytes, input, data.maxPixels);
  } catch (err) {
    throw err instanceof UnusableImageError ? err : new UnusableImageError((err as Error).message);
  }
}

export default async function infer(task: InferenceTask): Promise<InferenceResult> {
  await warmedUp;
  const views: Record<string, Record<string, number>>[] = [];
  const problems: Record<string, Record<string, string>>[] = [];
  const overlays: { view: number; model: string; kind: string; sha256: string; bytes: number; data: Uint8Array }[] = [];
  let preprocessMs = 0;
  let inferenceMs = 0;
  for (const [view, image] of task.images.entries()) {
    let bytes: Promise<Buffer> | null = null;
    const original = () => (bytes ??= store.get(image.sha256));
    const measures: Record<string, Record<string, number>> = {};
    const flagged: Record<string, Record<string, string>> = {};
    for (const id of task.models) {
      const model = models.get(id);
      if (!model) throw new Error(`model "${id}" is not in this worker's registry`);
      const t0 = performance.now();
      let pixels: PreparedPixels;
      try {
        pixels = await pixelsFor(image, model.manifest.input, original);
      } catch (err) {
        if (!(err instanceof UnusableImageError)) throw err;
        return { ok: false, reason: `image ${view} (${image.sha256}) cannot be used: ${err.message}` };
      }
      const tensor = pixelsToTensor(pixels.raw, model.manifest.input);
      const t1 = performance.now();
      const session = await sessionFor(id);
      const outputs = await session.run({ [model.manifest.input.name]: new ort.Tensor('float32', tensor.data, tensor.dims) });
      const t2 = performance.now();
      preprocessMs += t1 - t0;
      inferenceMs += t2 - t1;
      const out = taskOf(model.manifest).run(model.manifest, outputs, pixels.geometry);
      measures[id] = Object.fromEntries(out.measures);
      for (const spec of model.specs) {
        const problem = outOfRange(spec, out.measures.get(spec.name) ?? NaN);
        if (problem) (flagged[id] ??= {})[spec.name] = `${problem}: check the manifest's outputs and score settings`;
      }
      for (const o of out.overlays) {
        const encoded = await overlayBytes(o);
        overlays.push({ view, model: id, kind: o.kind, sha256: await store.put(encoded), bytes: encoded.length, data: encoded });
      }
    }
    views.push(measures);
    problems.push(flagged);
  }
  return { ok: true, views, problems, overlays, preprocessMs, inferenceMs };
}
