/**
 * Fits an anomaly model from good images only and writes a registry folder:
 *   <outDir>/model.onnx   anomalib layout: input → pred_score [N], anomaly_map [N,1,H,W], normalised
 *   <outDir>/model.json   manifest, valid under anomalyManifestSchema
 *
 * Every number in the model is either a fixed operator (see patch-model.ts) or fitted here:
 *   1. the PCA of each scale's patches over the good images (the descriptor extractor);
 *   2. per scale, a memory bank of good descriptors (greedy k-center coreset, see memory-bank.ts);
 *   3. calibration on images the banks have not seen — the validation images when given,
 *      otherwise each training fold scored by banks built from the other folds:
 *      a. per scale, a weight that puts the scales' typical maxima on good images on one footing;
 *      b. the threshold t (best F1 with bad validation images, else a high quantile of the good
 *         scores) and the min/max of anomalib's normalisation, so t maps to 0.5 (see below for max).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { anomalyManifestSchema, type AnomalyManifest } from '../inference/tasks/anomaly.js';
import { FEATURE_COUNT, buildFeatureModel, gaussianFactor, gridSizeFor, type LocationStatistics } from './anomaly-graph.js';
import { DEFAULT_STATISTICS_OPTIONS, fitLocationStatistics, locationExplainedVariance } from './location-statistics.js';
import { auroc, bestF1Threshold, f1Score, quantile } from './metrics.js';
import {
  DEFAULT_MEMORY_BANK,
  candidatesPerImage,
  descriptorCandidates,
  fitPatchFeatures,
  memoryBanksFrom,
  type Candidates,
  type MemoryBankOptions,
} from './patch-fit.js';
import {
  DEFAULT_SCALES,
  PATCH_SIZE,
  buildPatchModel,
  descriptorLength,
  gridStep,
  patchGridSize,
  type ModelSize,
  type PatchFeatureParameters,
  type PatchScale,
  type ScoreNormalization,
} from './patch-model.js';
import type { ImageTensor } from './preprocess.js';
import { createSession, loadImages, runPerImage, type SkippedImage } from './runtime.js';

export interface FitProgress {
  stage: 'load' | 'features' | 'memory' | 'calibrate' | 'write';
  message: string;
  /** For per-image steps: images done and in all. */
  done?: number;
  total?: number;
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
  /** Square model input size in pixels, a multiple of 8 (default DEFAULT_INPUT_SIZE). */
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
  scales?: readonly PatchScale[];
  memoryBank?: Partial<MemoryBankOptions>;
  /**
   * The per-location Gaussian branch: 'auto' (default) uses it when the good images are aligned
   * (location explains at least ALIGNED_EXPLAINED_VARIANCE of their local-feature variance).
   */
  gaussianBranch?: boolean | 'auto';
}

export interface Calibration {
  /** Where the good calibration scores came from. */
  goodSource: 'validation' | 'cross-validation';
  thresholdRule: 'best-f1' | 'good-quantile';
  goodScores: number[];
  badScores: number[];
  /** Per scale: 1 / (0.9 quantile of the scale's raw maxima on the good calibration images). */
  scaleWeights: number[];
  /** The same for the per-location Gaussian branch; null without it. */
  gaussianWeight: number | null;
  normalization: ScoreNormalization;
}

export interface FitAnomalyModelResult {
  manifest: AnomalyManifest;
  modelPath: string;
  manifestPath: string;
  /** Files that could not be read or decoded, with why; they were left out. */
  skipped: SkippedImage[];
  trainingImages: number;
  calibration: Calibration;
}

export const MIN_TRAINING_IMAGES = 5;
/** Large enough for defects a few pixels wide in a ~1 MP camera image; see docs/models.md for the timing. */
export const DEFAULT_INPUT_SIZE = 512;
/**
 * The per-location branch is used when cell location explains at least this share of the good
 * images' local-feature variance. Measured: DeepPCB panels 0.02 (every crop a different board
 * region), the fixture machined surface 0.16 (lighting gradient, vignetting), the bracket 0.74.
 * On unaligned images the branch only adds noise (DeepPCB AUROC 0.947 with it).
 */
export const ALIGNED_EXPLAINED_VARIANCE = 0.08;
/** Quantile of each scale's maxima on good calibration images that its weight maps to 1. */
const SCALE_WEIGHT_QUANTILE = 0.9;

export class ModelFitError extends Error {
  override name = 'ModelFitError';
}

interface RawScores {
  /** Combined raw image scores (when weights were given). */
  scores: number[];
  /** Per branch (each scale, then the Gaussian if any), each image's maximum raw distance. */
  branchMaxima: number[][];
}

interface Branches {
  memoryBanks: Float32Array[];
  gaussian: LocationStatistics | null;
}

/**
 * Raw (un-normalised) scores of `tensors`, computed by the real graph: with `weights` (one per
 * scale, then the Gaussian's) the combined image scores, without them each branch's maxima.
 */
async function rawScores(size: ModelSize, features: PatchFeatureParameters, branches: Branches, weights: number[] | null, tensors: readonly ImageTensor[]): Promise<RawScores> {
  const names = [...features.scales.map((s) => `distance_${s.factor}`), ...(branches.gaussian ? ['distance_gaussian'] : [])];
  const result: RawScores = { scores: [], branchMaxima: names.map(() => []) };
  if (tensors.length === 0) return result;
  const scaleCount = features.scales.length;
  const model = buildPatchModel({
    size,
    features,
    memoryBanks: branches.memoryBanks,
    scaleWeights: weights ? weights.slice(0, scaleCount) : null,
    ...(branches.gaussian ? { gaussian: { statistics: branches.gaussian, weight: weights ? (weights[scaleCount] as number) : null } } : {}),
    normalization: null,
  });
  const session = await createSession(model);
  try {
    await runPerImage(session, 'input', tensors, weights ? ['pred_score'] : names, (_, values) => {
      if (weights) result.scores.push((values.pred_score as Float32Array)[0] as number);
      else names.forEach((name, index) => (result.branchMaxima[index] as number[]).push((values[name] as Float32Array).reduce((m, v) => Math.max(m, v), 0)));
    });
  } finally {
    await session.release();
  }
  return result;
}

async function gaussianFeatures(size: ModelSize, tensors: readonly ImageTensor[]): Promise<Float32Array[]> {
  const session = await createSession(buildFeatureModel(size, gaussianFactor(size)));
  const features: Float32Array[] = [];
  try {
    await runPerImage(session, 'input', tensors, ['features'], (_, outputs) => features.push(Float32Array.from(outputs.features as Float32Array)));
  } finally {
    await session.release();
  }
  return features;
}

/** Candidates of the given images only. */
const subset = (candidates: Candidates, keep: (i: number) => boolean): Candidates => candidates.filter((_, i) => keep(i));

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const round = (value: number, digits = 6): number => Number(value.toPrecision(digits));

export async function fitAnomalyModel(options: FitAnomalyModelOptions): Promise<FitAnomalyModelResult> {
  const inputSize = options.inputSize ?? DEFAULT_INPUT_SIZE;
  const size: ModelSize = { width: inputSize, height: inputSize };
  const scales = options.scales ?? DEFAULT_SCALES;
  patchGridSize(size, scales); // throws a RangeError for a size the scales cannot take
  const bankOptions: MemoryBankOptions = { ...DEFAULT_MEMORY_BANK, ...options.memoryBank };
  const goodQuantile = options.goodQuantile ?? 0.99;
  const progress = (stage: FitProgress['stage'], message: string, done?: number, total?: number): void =>
    options.onProgress?.({ stage, message, ...(done !== undefined ? { done, total } : {}) });
  const skipped: SkippedImage[] = [];
  const reportSkipped = (entry: SkippedImage): void => {
    skipped.push(entry);
    progress('load', `skipped ${entry.file}: ${entry.reason}`);
  };
  const load = async (files: readonly string[], what: string) => {
    if (files.length === 0) return { files: [], tensors: [] };
    progress('load', `loading ${files.length} ${what} at ${inputSize}×${inputSize}`);
    return loadImages(files, size.width, size.height, reportSkipped, (done) => progress('load', `${what}: ${done}/${files.length}`, done, files.length));
  };

  const training = await load(options.goodImages, 'good training images');
  if (training.tensors.length < MIN_TRAINING_IMAGES) {
    throw new ModelFitError(
      `need at least ${MIN_TRAINING_IMAGES} readable good images to fit, got ${training.tensors.length} of ${options.goodImages.length}`,
    );
  }
  const validationGood = await load(options.valGood ?? [], 'good validation images');
  const validationBad = await load(options.valBad ?? [], 'bad validation images');

  const n = training.tensors.length;
  progress('features', `patch PCA of ${n} images (${scales.map((s) => `${PATCH_SIZE * s.factor} px`).join(', ')} patches)`);
  const features = await fitPatchFeatures(training.tensors, size, scales);
  const perImage = candidatesPerImage(n, bankOptions);
  progress('features', `descriptors of ${n} images`);
  const candidates = await descriptorCandidates(training.tensors, size, features, perImage, (done) =>
    progress('features', `descriptors: ${done}/${n}`, done, n),
  );
  progress('memory', `memory banks of ${bankOptions.size} rows per scale from ${perImage} candidates per image`);
  const memoryBanks = memoryBanksFrom(candidates, features, bankOptions);
  const branchOption = options.gaussianBranch ?? 'auto';
  const gaussianScale = gaussianFactor(size);
  const gaussianGrid = gridSizeFor({ width: size.width / gaussianScale, height: size.height / gaussianScale });
  let localFeatures: Float32Array[] = [];
  let alignment: number | null = null;
  if (branchOption !== false) {
    localFeatures = await gaussianFeatures(size, training.tensors);
    alignment = locationExplainedVariance(localFeatures, gaussianGrid.gridWidth * gaussianGrid.gridHeight);
  }
  const withGaussian = branchOption === true || (branchOption === 'auto' && (alignment as number) >= ALIGNED_EXPLAINED_VARIANCE);
  progress(
    'features',
    alignment === null
      ? 'per-location branch off'
      : `location explains ${(100 * alignment).toFixed(0)} % of the local-feature variance: per-location Gaussian branch ${withGaussian ? 'on' : 'off'}`,
  );
  const fitGaussian = (keep: (i: number) => boolean): LocationStatistics | null =>
    withGaussian ? fitLocationStatistics(localFeatures.filter((_, i) => keep(i)), gaussianGrid, DEFAULT_STATISTICS_OPTIONS) : null;
  const gaussian = fitGaussian(() => true);
  const branches: Branches = { memoryBanks, gaussian };

  // Good calibration scores must come from images the banks did not see, or the threshold would
  // sit inside the (optimistically low) training scores and flag good parts.
  let goodSource: Calibration['goodSource'];
  let weights: number[];
  let goodScores: number[];
  const weightsFrom = (maxima: number[][]): number[] => maxima.map((m) => 1 / Math.max(quantile(m, SCALE_WEIGHT_QUANTILE), 1e-6));
  if (validationGood.tensors.length > 0) {
    goodSource = 'validation';
    progress('calibrate', `scoring ${validationGood.tensors.length} good validation images`);
    weights = weightsFrom((await rawScores(size, features, branches, null, validationGood.tensors)).branchMaxima);
    goodScores = (await rawScores(size, features, branches, weights, validationGood.tensors)).scores;
  } else {
    goodSource = 'cross-validation';
    const folds = Math.min(options.folds ?? 5, n);
    const inFold = (fold: number) => (i: number) => i % folds === fold;
    const foldBranches: Branches[] = [];
    const maxima: number[][] = [];
    for (let fold = 0; fold < folds; fold++) {
      progress('calibrate', `fold ${fold + 1}/${folds}: banks without its images, branch maxima`, fold, folds);
      const outside = (i: number): boolean => !inFold(fold)(i);
      const foldBranch: Branches = { memoryBanks: memoryBanksFrom(subset(candidates, outside), features, bankOptions), gaussian: fitGaussian(outside) };
      foldBranches.push(foldBranch);
      const raw = await rawScores(size, features, foldBranch, null, training.tensors.filter((_, i) => inFold(fold)(i)));
      raw.branchMaxima.forEach((m, index) => (maxima[index] ??= []).push(...m));
    }
    weights = weightsFrom(maxima);
    goodScores = [];
    for (let fold = 0; fold < folds; fold++) {
      progress('calibrate', `fold ${fold + 1}/${folds}: cross-validated good scores`, fold, folds);
      const raw = await rawScores(size, features, foldBranches[fold] as Branches, weights, training.tensors.filter((_, i) => inFold(fold)(i)));
      goodScores.push(...raw.scores);
    }
  }
  const scaleWeights = weights.slice(0, scales.length);
  const gaussianWeight = withGaussian ? (weights[scales.length] as number) : null;
  const badScores = (await rawScores(size, features, branches, weights, validationBad.tensors)).scores;

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
  const calibration: Calibration = { goodSource, thresholdRule, goodScores, badScores, scaleWeights, gaussianWeight, normalization };
  progress(
    'calibrate',
    `threshold ${threshold.toFixed(4)} (${thresholdRule}, good scores from ${goodSource}), range ${normalization.min.toFixed(4)}..${normalization.max.toFixed(4)}`,
  );

  progress('write', `writing ${options.outDir}`);
  const modelBytes = buildPatchModel({
    size,
    features,
    memoryBanks,
    scaleWeights,
    ...(gaussian ? { gaussian: { statistics: gaussian, weight: gaussianWeight } } : {}),
    normalization,
    metadata: { id: options.id, version: options.version, task: 'anomaly' },
    docString: 'visq patch memory-bank anomaly model; outputs normalised as anomalib (threshold at 0.5)',
  });
  const calibrationMetrics: Record<string, unknown> = {
    good_scores_from: goodSource,
    threshold_rule: thresholdRule === 'best-f1' ? 'best F1 on validation good/bad' : `quantile ${goodQuantile} of good scores`,
    raw_threshold: round(threshold),
    raw_min: round(normalization.min),
    raw_max: round(normalization.max),
    scale_weights: scaleWeights.map((w) => round(w)),
    gaussian_weight: gaussianWeight === null ? null : round(gaussianWeight),
    location_explained_variance: alignment === null ? null : round(alignment, 4),
    good_images: goodScores.length,
    bad_images: badScores.length,
  };
  if (badScores.length > 0) {
    const labels = [...goodScores.map(() => 0), ...badScores.map(() => 1)];
    calibrationMetrics.image_auroc = round(auroc(allScores, labels), 4);
    calibrationMetrics.image_f1 = round(f1Score(allScores, labels, threshold), 4);
  }

  const { manifest, modelPath, manifestPath } = await writeFittedModel(options.outDir, {
    id: options.id,
    version: options.version,
    modelBytes,
    size,
    card: options.card ?? {},
    data: `${training.tensors.length} good images${validationBad.tensors.length ? ` (+ ${validationGood.tensors.length} good / ${validationBad.tensors.length} bad validation images for calibration)` : ''}`,
    method: describeMethod({ size, scales, bankOptions, images: n, thresholdRule, goodQuantile, goodSource, gaussian: withGaussian }),
    reproduce: 'fitAnomalyModel() in src/model-fit/fit.ts',
    metrics: { calibration: calibrationMetrics },
    license: 'Apache-2.0',
  });
  return { manifest, modelPath, manifestPath, skipped, trainingImages: n, calibration };
}

/**
 * Writes a model fitted here (either method) as a registry folder: the graph and its manifest
 * (input RGB stretched to `size`, 0..1; anomalib outputs already normalised). The card's own texts
 * win over the defaults given.
 */
export async function writeFittedModel(
  outDir: string,
  o: { id: string; version: string; modelBytes: Uint8Array; size: ModelSize; card: ModelCardText; data: string; method: string; reproduce: string; metrics: Record<string, unknown>; license: string },
): Promise<{ manifest: AnomalyManifest; modelPath: string; manifestPath: string }> {
  const manifest = anomalyManifestSchema.parse({
    id: o.id,
    version: o.version,
    task: 'anomaly',
    file: 'model.onnx',
    sha256: sha256Hex(o.modelBytes),
    measures: ['anomaly_score'],
    input: { name: 'input', width: o.size.width, height: o.size.height, layout: 'NCHW', channels: 'RGB', resize: 'stretch', normalization: null },
    outputs: { score: 'pred_score', map: 'anomaly_map' },
    scoreNormalization: null,
    card: {
      description: o.card.description ?? 'Anomaly detector fitted on good images only; scores in [0, 1], 0.5 at the fitted threshold.',
      data: o.card.data ?? o.data,
      method: o.method,
      reproduce: o.card.reproduce ?? o.reproduce,
      metrics: { ...o.metrics, ...o.card.metrics },
      license: o.card.license ?? o.license,
    },
  });
  await mkdir(outDir, { recursive: true });
  const modelPath = join(outDir, 'model.onnx');
  const manifestPath = join(outDir, 'model.json');
  await writeFile(modelPath, o.modelBytes);
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return { manifest, modelPath, manifestPath };
}

function describeMethod(o: {
  size: ModelSize;
  scales: readonly PatchScale[];
  bankOptions: MemoryBankOptions;
  images: number;
  thresholdRule: Calibration['thresholdRule'];
  goodQuantile: number;
  goodSource: Calibration['goodSource'];
  gaussian: boolean;
}): string {
  const scales = o.scales.map((s) => `${PATCH_SIZE * s.factor} px every ${gridStep(s)} px (${s.components} components)`).join('; ');
  return (
    'Patch memory bank (as PatchCore, on a fitted linear feature extractor instead of a pretrained CNN). ' +
    `Descriptors at ${o.scales.length} scales (${scales}): the gray-level patch projected on its leading principal ` +
    `components (PCA of ${o.images} good images' patches), the patch energy those components leave out, and the mean ` +
    `colour (${o.scales.map((s) => descriptorLength(s)).join('/')} values), each scale weighted to unit total variance. ` +
    `Per scale, a memory bank of ${o.bankOptions.size} good descriptors (greedy k-center coreset, ${o.bankOptions.oversampling}× ` +
    'candidates drawn per image first); a cell\'s anomaly = Euclidean distance to its nearest bank row, weighted per scale ' +
    `(1 / ${SCALE_WEIGHT_QUANTILE} quantile of the scale's maxima on held-out good images). ` +
    (o.gaussian
      ? `Second branch, for what depends on where it is (a missing hole, a shading change): per ${4 * gaussianFactor(o.size)}-px cell a Gaussian of ${FEATURE_COUNT} fixed ` +
        'local features (relative log luminance, colour, log local variance, log directional and Laplacian energies), full covariance ' +
        'pooled over 3×3 cells; its Mahalanobis RMS map 3×3 smoothed, dilated by one cell (3×3 maximum) and weighted the same way. '
      : '') +
    `Anomaly map = maximum over ${o.gaussian ? 'scales and branches' : 'scales'} on the finest grid, bilinear to input size; ` +
    'image score = map maximum. The patch branch is location-free: parts need not be aligned. ' +
    "Outputs normalised as anomalib's clamp((x − t)/(max − min) + 0.5, 0, 1), fitted on held-out calibration " +
    `scores (${o.goodSource === 'validation' ? 'validation images' : 'cross-validation folds of the training images'}): ` +
    `t ${o.thresholdRule === 'best-f1' ? 'at the best validation F1' : `at the ${o.goodQuantile} quantile of good scores`}, ` +
    'min the lowest calibration score, max = 2t − min (normal variation spans 0..0.5). ' +
    `Input: RGB stretched to ${o.size.width}×${o.size.height}, float32 NCHW 0..1, no mean/std normalisation.`
  );
}
