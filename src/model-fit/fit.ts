/**
 * Fits an anomaly model from good images only and writes a registry folder:
 *   <outDir>/model.onnx   anomalib layout: input → pred_score [N], anomaly_map [N,1,H,W], normalised
 *   <outDir>/model.json   manifest, valid under modelManifestSchema
 *
 * Every number in the model is either a fixed operator (see anomaly-graph.ts) or fitted here:
 *   1. features of the good images (the feature-only graph, run by onnxruntime);
 *   2. per grid cell, the mean feature vector and its covariance over the good images (as a
 *      whitening matrix, see location-statistics.ts);
 *   3. calibration: raw scores of images the statistics have not seen — the validation images
 *      when given, otherwise each training fold scored by statistics fitted on the other folds —
 *      give the threshold t (best F1 with bad validation images, else a high quantile of the good
 *      scores) and the min/max of anomalib's normalisation, so t maps to 0.5 (see below for max).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { modelManifestSchema, type ModelManifest } from '../inference/manifest.js';
import {
  FEATURE_COUNT,
  FEATURE_NAMES,
  FEATURE_STRIDE,
  buildAnomalyModel,
  buildFeatureModel,
  gridSizeFor,
  type LocationStatistics,
  type ModelSize,
  type ScoreNormalization,
} from './anomaly-graph.js';
import { DEFAULT_STATISTICS_OPTIONS, fitLocationStatistics, type StatisticsOptions } from './location-statistics.js';
import { auroc, bestF1Threshold, f1Score, quantile } from './metrics.js';
import type { ImageTensor } from './preprocess.js';
import { createSession, loadImages, runPerImage, type SkippedImage } from './runtime.js';

export interface FitProgress {
  stage: 'load' | 'features' | 'calibrate' | 'write';
  message: string;
}

export interface ModelCardText {
  description?: string;
  /** What the training data was and where it came from. */
  data?: string;
  /** The exact command that rebuilds this model. */
  reproduce?: string;
  license?: string;
  /** Extra measured metrics to record (e.g. from a held-out test set). */
  metrics?: Record<string, unknown>;
}

export interface FitAnomalyModelOptions {
  /** Paths of good (defect-free) training images. */
  goodImages: string[];
  outDir: string;
  id: string;
  version: string;
  /** Square model input size in pixels, a multiple of 4 (default 256, as anomalib exports). */
  inputSize?: number;
  /** Good validation images (not used for the statistics, only for calibration). */
  valGood?: string[];
  /** Defective validation images; with them the threshold maximises F1 as anomalib's does. */
  valBad?: string[];
  onProgress?: (progress: FitProgress) => void;
  card?: ModelCardText;
  /** Without bad validation images: the threshold is this quantile of good calibration scores. */
  goodQuantile?: number;
  /** Without good validation images: folds for cross-validated good scores (default 5). */
  folds?: number;
  statistics?: Partial<StatisticsOptions>;
}

export interface Calibration {
  /** Where the good calibration scores came from. */
  goodSource: 'validation' | 'cross-validation';
  thresholdRule: 'best-f1' | 'good-quantile';
  goodScores: number[];
  badScores: number[];
  normalization: ScoreNormalization;
}

export interface FitAnomalyModelResult {
  manifest: ModelManifest;
  modelPath: string;
  manifestPath: string;
  /** Files that could not be read or decoded, with why; they were left out. */
  skipped: SkippedImage[];
  trainingImages: number;
  calibration: Calibration;
}

const MIN_TRAINING_IMAGES = 5;
const DEFAULT_INPUT_SIZE = 256;

export class ModelFitError extends Error {
  override name = 'ModelFitError';
}

async function extractFeatures(featureModel: Uint8Array, tensors: readonly ImageTensor[]): Promise<Float32Array[]> {
  const session = await createSession(featureModel);
  try {
    const features: Float32Array[] = [];
    await runPerImage(session, 'input', tensors, ['features'], (_, outputs) => {
      features.push(Float32Array.from(outputs.features as Float32Array));
    });
    return features;
  } finally {
    await session.release();
  }
}

/** Raw (un-normalised) image scores of `tensors` under the given statistics, computed by the real graph. */
async function rawScores(size: ModelSize, statistics: LocationStatistics, tensors: readonly ImageTensor[]): Promise<number[]> {
  if (tensors.length === 0) return [];
  const session = await createSession(buildAnomalyModel({ size, statistics, normalization: null }));
  try {
    const scores: number[] = [];
    await runPerImage(session, 'input', tensors, ['pred_score'], (_, outputs) => {
      scores.push((outputs.pred_score as Float32Array)[0] as number);
    });
    return scores;
  } finally {
    await session.release();
  }
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const round = (value: number, digits = 6): number => Number(value.toPrecision(digits));

export async function fitAnomalyModel(options: FitAnomalyModelOptions): Promise<FitAnomalyModelResult> {
  const inputSize = options.inputSize ?? DEFAULT_INPUT_SIZE;
  const size: ModelSize = { width: inputSize, height: inputSize };
  const grid = gridSizeFor(size);
  const statisticsOptions = { ...DEFAULT_STATISTICS_OPTIONS, ...options.statistics };
  const goodQuantile = options.goodQuantile ?? 0.99;
  const progress = (stage: FitProgress['stage'], message: string): void => options.onProgress?.({ stage, message });
  const skipped: SkippedImage[] = [];
  const reportSkipped = (entry: SkippedImage): void => {
    skipped.push(entry);
    progress('load', `skipped ${entry.file}: ${entry.reason}`);
  };

  progress('load', `loading ${options.goodImages.length} good training images at ${inputSize}×${inputSize}`);
  const training = await loadImages(options.goodImages, size.width, size.height, reportSkipped);
  if (training.tensors.length < MIN_TRAINING_IMAGES) {
    throw new ModelFitError(
      `need at least ${MIN_TRAINING_IMAGES} readable good images to fit, got ${training.tensors.length} of ${options.goodImages.length}`,
    );
  }
  const validationGood = await loadImages(options.valGood ?? [], size.width, size.height, reportSkipped);
  const validationBad = await loadImages(options.valBad ?? [], size.width, size.height, reportSkipped);

  progress('features', `computing features of ${training.tensors.length} images`);
  const featureModel = buildFeatureModel(size);
  const trainingFeatures = await extractFeatures(featureModel, training.tensors);
  const statistics = fitLocationStatistics(trainingFeatures, grid, statisticsOptions);

  // Good calibration scores must come from images the statistics did not see, or the threshold
  // would sit inside the (optimistically low) training scores and flag good parts.
  let goodScores: number[];
  let goodSource: Calibration['goodSource'];
  if (validationGood.tensors.length > 0) {
    progress('calibrate', `scoring ${validationGood.tensors.length} good validation images`);
    goodScores = await rawScores(size, statistics, validationGood.tensors);
    goodSource = 'validation';
  } else {
    const folds = Math.min(options.folds ?? 5, training.tensors.length);
    progress('calibrate', `${folds}-fold cross-validated scores of the training images`);
    goodScores = [];
    for (let fold = 0; fold < folds; fold++) {
      const inFold = (i: number): boolean => i % folds === fold;
      const foldStatistics = fitLocationStatistics(
        trainingFeatures.filter((_, i) => !inFold(i)),
        grid,
        statisticsOptions,
      );
      goodScores.push(...(await rawScores(size, foldStatistics, training.tensors.filter((_, i) => inFold(i)))));
    }
    goodSource = 'cross-validation';
  }
  const badScores = await rawScores(size, statistics, validationBad.tensors);

  let threshold: number;
  let thresholdRule: Calibration['thresholdRule'];
  if (badScores.length > 0) {
    const scores = [...goodScores, ...badScores];
    const labels = [...goodScores.map(() => 0), ...badScores.map(() => 1)];
    threshold = bestF1Threshold(scores, labels).threshold;
    thresholdRule = 'best-f1';
  } else {
    threshold = quantile(goodScores, goodQuantile);
    thresholdRule = 'good-quantile';
  }
  const allScores = [...goodScores, ...badScores];
  // min: the lowest calibration score. max: 2t − min, so the range of normal variation [min, t]
  // maps to [0, 0.5] and the score reaches 1 as far above t as min lies below it. anomalib takes
  // the highest calibration score as max instead; when defects score far above the threshold that
  // squeezes every good part to just under 0.5, and a quality plan's guard band (e.g. 0.1 below a
  // 0.5 limit) would send them all to review. Same formula, same 0.5 threshold, usable spread.
  const min = Math.min(...allScores);
  let max = 2 * threshold - min;
  if (!(max > min)) max = min + Math.max(Math.abs(min), 1) * 1e-3; // threshold at the minimum: degenerate data
  const normalization: ScoreNormalization = { threshold, min, max };
  const calibration: Calibration = { goodSource, thresholdRule, goodScores, badScores, normalization };
  progress(
    'calibrate',
    `threshold ${threshold.toFixed(4)} (${thresholdRule}, good scores from ${goodSource}), range ${normalization.min.toFixed(4)}..${normalization.max.toFixed(4)}`,
  );

  progress('write', `writing ${options.outDir}`);
  const modelBytes = buildAnomalyModel({
    size,
    statistics,
    normalization,
    metadata: { id: options.id, version: options.version, task: 'anomaly' },
    docString: 'visq per-location feature Gaussian anomaly model; outputs normalised as anomalib (threshold at 0.5)',
  });
  await mkdir(options.outDir, { recursive: true });
  const modelPath = join(options.outDir, 'model.onnx');
  const manifestPath = join(options.outDir, 'model.json');
  await writeFile(modelPath, modelBytes);

  const calibrationMetrics: Record<string, unknown> = {
    good_scores_from: goodSource,
    threshold_rule: thresholdRule === 'best-f1' ? 'best F1 on validation good/bad' : `quantile ${goodQuantile} of good scores`,
    raw_threshold: round(threshold),
    raw_min: round(normalization.min),
    raw_max: round(normalization.max),
    good_images: goodScores.length,
    bad_images: badScores.length,
  };
  if (badScores.length > 0) {
    const labels = [...goodScores.map(() => 0), ...badScores.map(() => 1)];
    calibrationMetrics.image_auroc = round(auroc(allScores, labels), 4);
    calibrationMetrics.image_f1 = round(f1Score(allScores, labels, threshold), 4);
  }

  const card = options.card ?? {};
  const manifest = modelManifestSchema.parse({
    id: options.id,
    version: options.version,
    task: 'anomaly',
    file: 'model.onnx',
    sha256: sha256Hex(modelBytes),
    measures: ['anomaly_score'],
    input: { name: 'input', width: size.width, height: size.height, layout: 'NCHW', channels: 'RGB', resize: 'stretch', normalization: null },
    outputs: { score: 'pred_score', map: 'anomaly_map' },
    scoreNormalization: null,
    card: {
      description:
        card.description ??
        'Anomaly detector fitted on good images only; scores in [0, 1], 0.5 at the fitted threshold.',
      data: card.data ?? `${training.tensors.length} good images${validationBad.tensors.length ? ` (+ ${validationGood.tensors.length} good / ${validationBad.tensors.length} bad validation images for calibration)` : ''}`,
      method:
        `Per-location Gaussian (as PaDiM, on fixed features instead of a CNN's): ${FEATURE_COUNT} local features ` +
        `(${FEATURE_NAMES.join(', ')}) from 8×8 windows every ${FEATURE_STRIDE} px, a ${grid.gridWidth}×${grid.gridHeight} grid; ` +
        `per-cell mean vector and ${FEATURE_COUNT}×${FEATURE_COUNT} covariance fitted on ${training.tensors.length} good images ` +
        `(covariance pooled over ${2 * statisticsOptions.neighbourhoodRadius + 1}×${2 * statisticsOptions.neighbourhoodRadius + 1} cells, ` +
        `ridge ${statisticsOptions.varianceShrinkage}× each feature's median variance). Anomaly map = Mahalanobis distance / √${FEATURE_COUNT}, ` +
        `3×3 smoothed, bilinear to input size; image score = map maximum. Outputs normalised as anomalib's ` +
        `clamp((x − t)/(max − min) + 0.5, 0, 1), fitted on held-out calibration scores: ` +
        `t ${thresholdRule === 'best-f1' ? 'at the best validation F1' : `at the ${goodQuantile} quantile of good scores`}, ` +
        `min the lowest calibration score, max = 2t − min (normal variation spans 0..0.5). ` +
        `Input: RGB stretched to ${size.width}×${size.height}, float32 NCHW 0..1, no mean/std normalisation.`,
      reproduce: card.reproduce ?? 'fitAnomalyModel() in src/model-fit/fit.ts',
      metrics: { calibration: calibrationMetrics, ...card.metrics },
      license: card.license ?? 'Apache-2.0',
    },
  });
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return { manifest, modelPath, manifestPath, skipped, trainingImages: training.tensors.length, calibration };
}
