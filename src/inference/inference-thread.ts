/**
 * Runs in a worker thread (piscina): onnxruntime-node's session.run blocks its thread, so it must
 * never run on the event loop that serves HTTP and the queue. Sessions load once per thread, and
 * each is run once on a generated image before the thread takes work, so the first part after a
 * start does not pay for the session's set-up.
 */
import { writeFileSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { FilesystemImageStore } from '../images/image-store.js';
import { PreparedInputs } from './prepared-inputs.js';
import { acceptsBatches, dryRun, itemOutputs, outOfRange, stackInputs } from './dry-run.js';
import { measureSpecs, taskOf, type Manifest } from './manifest.js';
import { geometryFor, pixelCount, pixelsKey, pixelsToTensor, preparePixels, UnusableImageError, type PreparedPixels } from './preprocess.js';
import type { TaskOverlay } from './tasks/types.js';

export interface InferenceThreadData {
  imageDir: string;
  preparedDir: string;
  maxPixels: number;
  /** Images one model run may take; 1 runs every image on its own. */
  maxBatch: number;
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
      /** Images in the largest model run this inspection's images were part of (dynamic batching). */
      runImages: number;
    }
  /** The image cannot be used by a model: retrying will not help. */
  | { ok: false; reason: string };

/** Per task of a batch: its result, or the error that should send its job back to the queue. */
export type BatchOutcome = { result: InferenceResult } | { error: string };

const data = workerData as InferenceThreadData;
// Named for top, `ps -L` and the benchmark's CPU breakdown (Linux only; elsewhere nothing happens).
try { writeFileSync('/proc/thread-self/comm', 'visq-inference'); } catch { /* not Linux */ }
// Each inference thread is one unit of CPU; libvips threads of its own would only contend with the others.
sharp.concurrency(1);
sharp.cache(false);
const store = new FilesystemImageStore(data.imageDir);
const preparedInputs = new PreparedInputs(data.preparedDir);
const models = new Map(data.models.map((m) => [m.manifest.id, { ...m, specs: measureSpecs(m.manifest) }]));

// One inference thread per core: more intra-op threads would only contend with the other inference threads.
const sessionOptions: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
const sessions = new Map(data.models.map((m) => [m.manifest.id, ort.InferenceSession.create(m.onnxPath, sessionOptions)]));
/** Models that take batches with results identical to single runs (acceptsBatches). */
const batchable = new Set<string>();
const warmedUp = Promise.all(data.models.map(async (m) => {
  const session = await sessions.get(m.manifest.id)!;
  await dryRun(session, m.manifest);
  if (data.maxBatch > 1 && (await acceptsBatches(session, m.manifest))) batchable.add(m.manifest.id);
}));

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

/** One model input of a batch: which task and view it belongs to, and its pixels. */
interface Item { task: number; view: number; pixels: PreparedPixels }

/**
 * A batch of inspections (InferencePool): each image is prepared for each model its task names,
 * then each model runs on all its images of the batch — in runs of up to `maxBatch` images when the
 * model takes batches, else one by one — and the outputs are read per image as a single run's.
 * A task whose image cannot be used gets its reason; one that fails otherwise, its error (the
 * queue retries it); neither affects the others.
 */
export default async function infer(tasks: InferenceTask[]): Promise<BatchOutcome[]> {
  await warmedUp;
  const outcomes: (BatchOutcome | null)[] = tasks.map(() => null);
  const timing = tasks.map(() => ({ preprocessMs: 0, inferenceMs: 0, runImages: 1 }));
  const views = tasks.map((t) => t.images.map(() => ({} as Record<string, Record<string, number>>)));
  const problems = tasks.map((t) => t.images.map(() => ({} as Record<string, Record<string, string>>)));
  const overlays: { view: number; model: string; kind: string; sha256: string; bytes: number; data: Uint8Array }[][] = tasks.map(() => []);
  const fail = (task: number, outcome: BatchOutcome) => { outcomes[task] ??= outcome; };

  const byModel = new Map<string, Item[]>();
  for (const [t, task] of tasks.entries()) {
    for (const [view, image] of task.images.entries()) {
      let bytes: Promise<Buffer> | null = null;
      const original = () => (bytes ??= store.get(image.sha256));
      for (const id of task.models) {
        if (outcomes[t]) break;
        const model = models.get(id);
        if (!model) { fail(t, { error: `model "${id}" is not in this worker's registry` }); break; }
        const t0 = performance.now();
        try {
          const pixels = await pixelsFor(image, model.manifest.input, original);
          const items = byModel.get(id) ?? [];
          if (items.length === 0) byModel.set(id, items);
          items.push({ task: t, view, pixels });
        } catch (err) {
          fail(t, err instanceof UnusableImageError
            ? { result: { ok: false, reason: `image ${view} (${image.sha256}) cannot be used: ${err.message}` } }
            : { error: (err as Error).message });
        }
        timing[t]!.preprocessMs += performance.now() - t0;
      }
    }
  }

  for (const [id, all] of byModel) {
    const model = models.get(id)!;
    const { manifest } = model;
    const session = await sessionFor(id);
    const items = all.filter((item) => !outcomes[item.task]);
    const runSize = batchable.has(id) ? data.maxBatch : 1;
    for (let start = 0; start < items.length; start += runSize) {
      const run = items.slice(start, start + runSize);
      const t0 = performance.now();
      const tensors = run.map((item) => pixelsToTensor(item.pixels.raw, manifest.input));
      const stacked = stackInputs(tensors.map((t) => t.data));
      const t1 = performance.now();
      let outputs: ort.InferenceSession.OnnxValueMapType;
      try {
        outputs = await session.run({ [manifest.input.name]: new ort.Tensor('float32', stacked, [run.length, ...tensors[0]!.dims.slice(1)]) });
      } catch (err) {
        for (const item of run) fail(item.task, { error: `model "${id}": ${(err as Error).message}` });
        continue;
      }
      const t2 = performance.now();
      const names = taskOf(manifest).outputNames(manifest);
      for (const [i, item] of run.entries()) {
        timing[item.task]!.preprocessMs += (t1 - t0) / run.length;
        timing[item.task]!.inferenceMs += (t2 - t1) / run.length;
        timing[item.task]!.runImages = Math.max(timing[item.task]!.runImages, run.length);
        try {
          const out = taskOf(manifest).run(manifest, run.length > 1 ? itemOutputs(outputs, names, i) : outputs, item.pixels.geometry);
          views[item.task]![item.view]![id] = Object.fromEntries(out.measures);
          for (const spec of model.specs) {
            const problem = outOfRange(spec, out.measures.get(spec.name) ?? NaN);
            if (problem) (problems[item.task]![item.view]![id] ??= {})[spec.name] = `${problem}: check the manifest's outputs and score settings`;
          }
          for (const o of out.overlays) {
            const encoded = await overlayBytes(o);
            overlays[item.task]!.push({ view: item.view, model: id, kind: o.kind, sha256: await store.put(encoded), bytes: encoded.length, data: encoded });
          }
        } catch (err) {
          fail(item.task, { error: `model "${id}": ${(err as Error).message}` });
        }
      }
    }
  }

  return tasks.map((task, t) => outcomes[t] ?? {
    result: {
      ok: true, views: views[t]!, problems: problems[t]!,
      // As a single task lists them: by view, then in the order the task names its models.
      overlays: overlays[t]!.sort((a, b) => a.view - b.view || task.models.indexOf(a.model) - task.models.indexOf(b.model)),
      preprocessMs: timing[t]!.preprocessMs, inferenceMs: timing[t]!.inferenceMs, runImages: timing[t]!.runImages,
    },
  });
}
