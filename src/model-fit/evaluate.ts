/**
 * Measures a registry model (any anomaly manifest, not only ones fitted here) on labelled images:
 * image AUROC, F1 at the 0.5 decision threshold, pixel AUROC against defect masks, and time per image.
 */
import { createHash } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { anomalyManifestSchema, type AnomalyManifest } from '../inference/tasks/anomaly.js';
import { auroc, f1Score } from './metrics.js';
import { loadImageTensor, loadMaskLabels } from './preprocess.js';
import { createSession, stackBatch, type SkippedImage } from './runtime.js';

export interface EvaluateAnomalyModelOptions {
  modelDir: string;
  good: string[];
  bad: string[];
  /**
   * Defect masks for the bad images: a map from image path to mask path, or a folder laid out as the
   * fixture generator writes it (`<dir>/<defect>/<name>` for `.../bad/<defect>/<name>`, or
   * `<dir>/<name>`). Good images count as all-good pixels.
   */
  masks?: Map<string, string> | string;
  /** Decision threshold on the model's normalised score (default 0.5, anomalib's). */
  threshold?: number;
}

export interface ScoredImage {
  file: string;
  label: 'good' | 'bad';
  score: number;
}

export interface EvaluationResult {
  auroc: number;
  f1: number;
  threshold: number;
  /** null when no bad image had a mask or the model has no anomaly map. */
  pixelAuroc: number | null;
  /** Bad images that had a mask (and so took part in the pixel AUROC). */
  maskedBadImages: number;
  scores: ScoredImage[];
  /** Mean session.run time for one image (batch of one, after one warm-up run), preprocessing excluded. */
  inferenceMsPerImage: number;
  skipped: SkippedImage[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function findMask(masks: EvaluateAnomalyModelOptions['masks'], image: string): Promise<string | null> {
  if (masks === undefined) return null;
  if (masks instanceof Map) return masks.get(image) ?? null;
  const candidates = [join(masks, basename(dirname(image)), basename(image)), join(masks, basename(image))];
  for (const candidate of candidates) if (await exists(candidate)) return candidate;
  return null;
}

export async function readManifest(modelDir: string): Promise<AnomalyManifest> {
  const path = join(modelDir, 'model.json');
  return anomalyManifestSchema.parse(JSON.parse(await readFile(path, 'utf8')));
}

/** anomalib's normalisation, for manifests that leave it to the runtime (raw-score exports). */
function normalizeScore(raw: number, manifest: AnomalyManifest): number {
  const n = manifest.scoreNormalization;
  if (!n) return raw;
  return Math.min(1, Math.max(0, (raw - n.threshold) / (n.max - n.min) + 0.5));
}

export async function evaluateAnomalyModel(options: EvaluateAnomalyModelOptions): Promise<EvaluationResult> {
  const manifest = await readManifest(options.modelDir);
  const modelPath = join(options.modelDir, manifest.file);
  const modelBytes = await readFile(modelPath);
  const actualSha = createHash('sha256').update(modelBytes).digest('hex');
  if (actualSha !== manifest.sha256) {
    throw new Error(`${modelPath} has sha256 ${actualSha}, but its manifest says ${manifest.sha256}`);
  }
  if (manifest.input.layout !== 'NCHW' || manifest.input.channels !== 'RGB' || manifest.input.normalization !== null || manifest.input.resize !== 'stretch') {
    // The fitting preprocessing implements only this contract; evaluating others here would mislead.
    throw new Error('evaluateAnomalyModel supports NCHW RGB stretched 0..1 inputs without normalization');
  }
  const { width, height } = manifest.input;
  const threshold = options.threshold ?? 0.5;
  const session = await createSession(new Uint8Array(modelBytes));
  const outputNames = [manifest.outputs.score, manifest.outputs.map].filter((name): name is string => name !== undefined);

  const scores: ScoredImage[] = [];
  const skipped: SkippedImage[] = [];
  const pixelScores: Float32Array[] = [];
  const pixelLabels: Uint8Array[] = [];
  let maskedBadImages = 0;
  let inferenceMs = 0;
  let runs = 0;
  try {
    const labelled = [
      ...options.good.map((file) => ({ file, label: 'good' as const })),
      ...options.bad.map((file) => ({ file, label: 'bad' as const })),
    ];
    for (const { file, label } of labelled) {
      let tensor;
      try {
        tensor = await loadImageTensor(file, width, height);
      } catch (error) {
        skipped.push({ file, reason: (error as Error).message });
        continue;
      }
      if (runs === 0) {
        // Warm-up: the first run allocates and plans; timing it would overstate steady-state cost.
        await session.run({ [manifest.input.name]: stackBatch([tensor]) }, outputNames);
      }
      const started = performance.now();
      const outputs = await session.run({ [manifest.input.name]: stackBatch([tensor]) }, outputNames);
      inferenceMs += performance.now() - started;
      runs++;

      const mapTensor = manifest.outputs.map ? outputs[manifest.outputs.map] : undefined;
      const map = mapTensor ? (mapTensor.data as Float32Array) : null;
      let raw: number;
      if (manifest.outputs.score) {
        raw = (outputs[manifest.outputs.score]?.data as Float32Array)[0] as number;
      } else {
        raw = map ? map.reduce((a, b) => Math.max(a, b), -Infinity) : NaN;
      }
      scores.push({ file, label, score: normalizeScore(raw, manifest) });

      if (map && mapTensor) {
        const dims = mapTensor.dims;
        const mapHeight = dims[dims.length - 2] as number;
        const mapWidth = dims[dims.length - 1] as number;
        let labels: Uint8Array | null = null;
        if (label === 'good') labels = new Uint8Array(mapWidth * mapHeight);
        else {
          const maskPath = await findMask(options.masks, file);
          if (maskPath) {
            labels = await loadMaskLabels(maskPath, mapWidth, mapHeight);
            maskedBadImages++;
          }
        }
        if (labels) {
          pixelScores.push(Float32Array.from(map));
          pixelLabels.push(labels);
        }
      }
    }
  } finally {
    await session.release();
  }

  const imageScores = scores.map((s) => s.score);
  const imageLabels = scores.map((s) => (s.label === 'bad' ? 1 : 0));
  let pixelAuroc: number | null = null;
  if (maskedBadImages > 0) {
    const total = pixelScores.reduce((n, a) => n + a.length, 0);
    const allScores = new Float32Array(total);
    const allLabels = new Uint8Array(total);
    let offset = 0;
    pixelScores.forEach((s, i) => {
      allScores.set(s, offset);
      allLabels.set(pixelLabels[i] as Uint8Array, offset);
      offset += s.length;
    });
    pixelAuroc = auroc(allScores, allLabels);
  }
  return {
    auroc: auroc(imageScores, imageLabels),
    f1: f1Score(imageScores, imageLabels, threshold),
    threshold,
    pixelAuroc,
    maskedBadImages,
    scores,
    inferenceMsPerImage: runs > 0 ? inferenceMs / runs : NaN,
    skipped,
  };
}

/**
 * Merges measured metrics into a model's card, re-validates the manifest and rewrites model.json.
 * The ONNX file is untouched, so its sha256 stays valid.
 */
export async function recordMetrics(modelDir: string, metrics: Record<string, unknown>): Promise<AnomalyManifest> {
  const manifest = await readManifest(modelDir);
  const updated = anomalyManifestSchema.parse({ ...manifest, card: { ...manifest.card, metrics: { ...manifest.card.metrics, ...metrics } } });
  await writeFile(join(modelDir, 'model.json'), `${JSON.stringify(updated, null, 2)}\n`);
  return updated;
}

export interface LatencyResult {
  /** Median session.run time of one image (batch of one), preprocessing excluded. */
  p50Ms: number;
  p90Ms: number;
  runs: number;
  threads: number;
}

/**
 * Model time per image as a worker sees it: a session with `threads` intra-op threads (1 by
 * default: one inspection per core), batch of one, after a few warm-up runs; the tensors are
 * cycled through until `runs` timings are taken.
 */
export async function measureLatency(modelDir: string, images: readonly string[], runs = 50, threads = 1): Promise<LatencyResult> {
  const manifest = await readManifest(modelDir);
  const { width, height } = manifest.input;
  const tensors = [];
  for (const file of images.slice(0, Math.min(images.length, runs))) tensors.push(await loadImageTensor(file, width, height));
  if (tensors.length === 0) throw new RangeError('no images to time the model on');
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(join(modelDir, manifest.file), { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential' });
  const times: number[] = [];
  try {
    for (let i = 0; i < runs + 3; i++) {
      const input = stackBatch([tensors[i % tensors.length] as (typeof tensors)[number]]);
      const started = performance.now();
      await session.run({ [manifest.input.name]: input });
      if (i >= 3) times.push(performance.now() - started);
    }
  } finally {
    await session.release();
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] as number;
  return { p50Ms: at(0.5), p90Ms: at(0.9), runs: times.length, threads };
}
