/**
 * `visq model fit --method pretrained` (the default): an anomaly model on the shipped pretrained
 * backbone's features, fitted from good images only, written as a registry folder:
 *   <outDir>/model.onnx   input [N,3,H,W] (RGB 0..1) → pred_score [N], anomaly_map [N,1,H,W], normalised
 *   <outDir>/model.json   manifest, valid under anomalyManifestSchema
 *
 * Steps: the input geometry from the training images' sizes (input-geometry.ts); their features
 * through the feature graph (pretrained-graph.ts); per-position Gaussians (gaussian-statistics.ts);
 * the threshold from scores of images the statistics did not see — cross-validation folds of the
 * good images, or --val-good — and, with defective images, placed by the false-accept limit
 * (calibration.ts); then the one graph with everything in it.
 */
import sharp from 'sharp';
import { loadBackbone, type BackboneGraph } from './backbone.js';
import { calibrateThreshold, DEFAULT_GOOD_QUANTILE, DEFAULT_MAX_FALSE_ACCEPT_RATE, type ThresholdCalibration } from './calibration.js';
import { MIN_TRAINING_IMAGES, ModelFitError, writeFittedModel, type FitAnomalyModelResult, type FitProgress, type ModelCardText } from './fit.js';
import { fitGaussianStatistics, imageScore, positionExplainedVariance, type GaussianStatistics } from './gaussian-statistics.js';
import { inputGeometry, type InputGeometry, type Size, type TilingMode } from './input-geometry.js';
import { auroc } from './metrics.js';
import { buildFeatureGraph, buildPretrainedModel, featureGrid, totalChannels, type FeatureLayout } from './pretrained-graph.js';
import { hashSeed, Random } from './random.js';
import type { ImageTensor } from './preprocess.js';
import { createSession, loadImages, runPerImage, type SkippedImage } from './runtime.js';

export interface FitPretrainedModelOptions {
  goodImages: string[];
  outDir: string;
  id: string;
  version: string;
  /** 'auto' (default): tiles when the training images are large (see input-geometry.ts). */
  tiling?: TilingMode;
  /** The model input's short side in pixels (a multiple of 32); default from the training images. */
  shortSide?: number;
  /** Good images for the threshold instead of cross-validation folds. */
  valGood?: string[];
  /** Defective images: the threshold then accepts at most `maxFalseAcceptRate` of them. */
  bad?: string[];
  maxFalseAcceptRate?: number;
  goodQuantile?: number;
  folds?: number;
  /**
   * Refuse (UnalignedImagesError, before anything is written) when position explains less than
   * MIN_POSITION_EXPLAINED_VARIANCE of the good images' features: `--method auto` then fits the
   * location-free pca-patches model instead.
   */
  requireAlignment?: boolean;
  /** Bytes the whitening matrices may take (half precision); sets how many feature channels are kept. */
  statisticsBudgetBytes?: number;
  onProgress?: (progress: FitProgress) => void;
  card?: ModelCardText;
}

/**
 * Below this share of feature variance explained by position, the good images are not aligned
 * parts and per-position statistics have nothing to go on. Measured (MobileNetV2 features, 224 px):
 * DeepPCB crops 0.07 (image AUROC 0.65 per position vs 0.96 with pca-patches); magnetic tiles 0.33,
 * KolektorSDD 0.32, solar cells 0.75, cast impellers 0.78.
 */
export const MIN_POSITION_EXPLAINED_VARIANCE = 0.15;

export class UnalignedImagesError extends Error {
  override name = 'UnalignedImagesError';
  constructor(readonly explainedVariance: number) {
    super(
      `position explains ${(100 * explainedVariance).toFixed(0)} % of the good images' feature variance (under ${100 * MIN_POSITION_EXPLAINED_VARIANCE} %): ` +
        'they do not show aligned parts, so per-position statistics cannot work; use --method pca-patches (location-free)',
    );
  }
}

export interface PretrainedCalibration extends ThresholdCalibration {
  goodSource: 'validation' | 'cross-validation';
  goodScores: number[];
  badScores: number[];
}

export interface FitPretrainedModelResult extends Omit<FitAnomalyModelResult, 'calibration'> {
  calibration: PretrainedCalibration;
  geometry: InputGeometry;
  channels: number;
  modelBytes: number;
}

/**
 * 32 MiB of whitening matrices in half precision: all 128 channels up to 1,024 positions (224×224 is
 * 784), 91 at 224×576, 73 for four tiles. Measured on KolektorSDD (224×576): image AUROC 0.921 with
 * 91 channels, 0.933 with 128, 0.904 with the 45 of an 8-MiB budget.
 */
export const DEFAULT_STATISTICS_BUDGET_BYTES = 32 * 1024 * 1024;
const MIN_CHANNELS = 16;

/** How many channels fit the budget at this many positions (a d×d half-precision matrix each). */
export function channelsForBudget(positions: number, available: number, budgetBytes: number): number {
  const fitting = Math.floor(Math.sqrt(budgetBytes / (2 * positions)));
  return Math.max(Math.min(fitting, available), Math.min(MIN_CHANNELS, available));
}

/** A fixed random subset of the channels (PaDiM's reduction), the same for every fit of a layout. */
export function selectChannels(available: number, count: number): number[] {
  if (count >= available) return Array.from({ length: available }, (_, i) => i);
  const random = new Random(hashSeed('visq-pretrained-channels', available, count));
  const indices = Array.from({ length: available }, (_, i) => i);
  for (let i = available - 1; i > 0; i--) {
    const j = random.int(0, i);
    [indices[i], indices[j]] = [indices[j] as number, indices[i] as number];
  }
  return indices.slice(0, count).sort((a, b) => a - b);
}

async function imageSizes(files: readonly string[]): Promise<Size[]> {
  const sizes: Size[] = [];
  for (const file of files) {
    try {
      const { width, height } = await sharp(file).metadata();
      if (width && height) sizes.push({ width, height });
    } catch {
      // Unreadable files are reported when the images are loaded.
    }
  }
  return sizes;
}

async function extractFeatures(backbone: BackboneGraph, layout: FeatureLayout, tensors: readonly ImageTensor[], onImage?: (done: number) => void): Promise<Float32Array[]> {
  if (tensors.length === 0) return [];
  const session = await createSession(buildFeatureGraph(backbone, layout));
  const features: Float32Array[] = [];
  try {
    await runPerImage(session, 'input', tensors, ['features'], (index, outputs) => {
      features.push(Float32Array.from(outputs.features as Float32Array));
      onImage?.(index + 1);
    });
  } finally {
    await session.release();
  }
  return features;
}

const round = (value: number, digits = 6): number => Number(value.toPrecision(digits));

export async function fitPretrainedModel(options: FitPretrainedModelOptions): Promise<FitPretrainedModelResult> {
  const progress = (stage: FitProgress['stage'], message: string, done?: number, total?: number): void =>
    options.onProgress?.({ stage, message, ...(done !== undefined ? { done, total } : {}) });
  const backbone = await loadBackbone();
  const sizes = await imageSizes(options.goodImages);
  if (sizes.length < MIN_TRAINING_IMAGES) throw new ModelFitError(`need at least ${MIN_TRAINING_IMAGES} readable good images to fit, got ${sizes.length} of ${options.goodImages.length}`);
  const geometry = inputGeometry(sizes, { tiling: options.tiling ?? 'auto', ...(options.shortSide !== undefined ? { shortSide: options.shortSide } : {}) });
  const grid = featureGrid(backbone, geometry);
  const available = totalChannels(backbone);
  const dims = channelsForBudget(grid.positions, available, options.statisticsBudgetBytes ?? DEFAULT_STATISTICS_BUDGET_BYTES);
  const layout: FeatureLayout = { geometry, channels: selectChannels(available, dims) };
  progress(
    'features',
    `input ${geometry.width}×${geometry.height}` + (geometry.tiles.length > 1 ? ` in ${geometry.tiles.length} tiles of ${geometry.tiles[0]?.width}×${geometry.tiles[0]?.height}` : '') + `; ${dims} of ${available} channels at ${grid.positions} positions`,
  );

  const skipped: SkippedImage[] = [];
  const report = (entry: SkippedImage): void => {
    skipped.push(entry);
    progress('load', `skipped ${entry.file}: ${entry.reason}`);
  };
  const featuresOf = async (files: readonly string[], what: string): Promise<Float32Array[]> => {
    if (files.length === 0) return [];
    progress('load', `loading ${files.length} ${what} at ${geometry.width}×${geometry.height}`);
    const { tensors } = await loadImages(files, geometry.width, geometry.height, report, (done) => progress('load', `${what}: ${done}/${files.length}`, done, files.length));
    progress('features', `backbone features of ${tensors.length} ${what}`);
    return extractFeatures(backbone, layout, tensors, (done) => progress('features', `${what}: ${done}/${tensors.length}`, done, tensors.length));
  };

  const training = await featuresOf(options.goodImages, 'good training images');
  const n = training.length;
  if (n < MIN_TRAINING_IMAGES) throw new ModelFitError(`need at least ${MIN_TRAINING_IMAGES} readable good images to fit, got ${n} of ${options.goodImages.length}`);
  const validationGood = await featuresOf(options.valGood ?? [], 'good validation images');
  const bad = await featuresOf(options.bad ?? [], 'defective images');

  const alignment = positionExplainedVariance(training, grid.positions, dims);
  progress('features', `position explains ${(100 * alignment).toFixed(0)} % of the feature variance`);
  if (options.requireAlignment && alignment < MIN_POSITION_EXPLAINED_VARIANCE) throw new UnalignedImagesError(alignment);

  progress('memory', `per-position Gaussians of ${n} images`);
  const fit = (images: readonly Float32Array[]): GaussianStatistics => fitGaussianStatistics(images, grid.positions, dims);
  const statistics = fit(training);

  // Good calibration scores come from images the statistics did not see, or the threshold would sit
  // inside the (optimistically low) training scores and flag good parts.
  let goodScores: number[];
  let goodSource: PretrainedCalibration['goodSource'];
  if (validationGood.length > 0) {
    goodSource = 'validation';
    goodScores = validationGood.map((f) => imageScore(statistics, f));
  } else {
    goodSource = 'cross-validation';
    const folds = Math.min(options.folds ?? 5, n);
    goodScores = [];
    for (let fold = 0; fold < folds; fold++) {
      progress('calibrate', `fold ${fold + 1}/${folds}: Gaussians without its images, their scores`, fold, folds);
      const foldStatistics = fit(training.filter((_, i) => i % folds !== fold));
      training.forEach((f, i) => {
        if (i % folds === fold) goodScores.push(imageScore(foldStatistics, f));
      });
    }
  }
  const badScores = bad.map((f) => imageScore(statistics, f));
  const threshold = calibrateThreshold(goodScores, badScores, {
    goodQuantile: options.goodQuantile ?? DEFAULT_GOOD_QUANTILE,
    ...(options.maxFalseAcceptRate !== undefined ? { maxFalseAcceptRate: options.maxFalseAcceptRate } : {}),
  });
  const calibration: PretrainedCalibration = { ...threshold, goodSource, goodScores, badScores };
  progress(
    'calibrate',
    `threshold ${threshold.threshold.toFixed(4)} (${threshold.rule}, good scores from ${goodSource}): ` +
      `${(100 * threshold.falseRejectRate).toFixed(1)} % of ${goodScores.length} good images flagged` +
      (threshold.falseAcceptRate !== null ? `, ${(100 * threshold.falseAcceptRate).toFixed(1)} % of ${badScores.length} defective accepted` : ''),
  );

  progress('write', `writing ${options.outDir}`);
  const modelBytes = buildPretrainedModel({
    backbone,
    layout,
    statistics,
    normalization: threshold,
    metadata: { id: options.id, version: options.version, task: 'anomaly' },
    docString: 'visq anomaly model on pretrained MobileNetV2 features (per-position Gaussians); outputs normalised as anomalib (threshold at 0.5)',
  });
  const calibrationMetrics: Record<string, unknown> = {
    good_scores_from: goodSource,
    threshold_rule:
      threshold.rule === 'good-quantile'
        ? `quantile ${options.goodQuantile ?? DEFAULT_GOOD_QUANTILE} of good scores`
        : `at most ${options.maxFalseAcceptRate ?? DEFAULT_MAX_FALSE_ACCEPT_RATE} of the defective images below the threshold`,
    raw_threshold: round(threshold.threshold),
    raw_min: round(threshold.min),
    raw_max: round(threshold.max),
    good_images: goodScores.length,
    bad_images: badScores.length,
    position_explained_variance: round(alignment, 3),
    false_reject_rate: round(threshold.falseRejectRate, 4),
    false_accept_rate: threshold.falseAcceptRate === null ? null : round(threshold.falseAcceptRate, 4),
  };
  if (badScores.length > 0) calibrationMetrics.image_auroc = round(auroc([...goodScores, ...badScores], [...goodScores.map(() => 0), ...badScores.map(() => 1)]), 4);

  const { manifest, modelPath, manifestPath } = await writeFittedModel(options.outDir, {
    id: options.id,
    version: options.version,
    modelBytes,
    size: geometry,
    card: options.card ?? {},
    data: `${n} good images${badScores.length ? ` (+ ${badScores.length} defective images for the threshold)` : ''}`,
    method: describeMethod(geometry, dims, available, n, goodSource, threshold.rule),
    reproduce: 'fitPretrainedModel() in src/model-fit/pretrained-fit.ts',
    metrics: {
      calibration: calibrationMetrics,
      model: { input: `${geometry.width}×${geometry.height}`, tiles: geometry.tiles.length, channels: dims, positions: grid.positions, onnx_bytes: modelBytes.length },
    },
    license: 'Apache-2.0 (backbone: MobileNetV2 from the ONNX Model Zoo, Apache-2.0)',
  });
  return { manifest, modelPath, manifestPath, skipped, trainingImages: n, calibration, geometry, channels: dims, modelBytes: modelBytes.length };
}

function describeMethod(geometry: InputGeometry, dims: number, available: number, images: number, goodSource: PretrainedCalibration['goodSource'], rule: ThresholdCalibration['rule']): string {
  const tiles = geometry.tiles;
  return (
    'PaDiM-style per-position Gaussians on pretrained features: MobileNetV2 (ImageNet, int8, ONNX Model Zoo; models/backbones) ' +
    'taps at stride 8 (32 channels) and 16 (96 channels), each averaged over 3×3 neighbours, the coarser resized onto the stride-8 grid, ' +
    (dims === available ? `all ${available} channels. ` : `${dims} of the ${available} channels kept (fixed random subset). `) +
    `One Gaussian per grid position (mean and covariance, plus 1 % of its mean variance on the diagonal, over ${images} good images); a position's anomaly is its Mahalanobis distance, ` +
    'the image score the largest on the grid; the anomaly map is the distance grid upsampled bilinearly' +
    (tiles.length > 1 ? `, per tile of ${tiles.length} overlapping ${tiles[0]?.width}×${tiles[0]?.height} tiles, stitched by the maximum where they overlap` : '') +
    '. ' +
    "Outputs normalised as anomalib's clamp((x − t)/(max − min) + 0.5, 0, 1) on scores of images the statistics did not see " +
    `(${goodSource === 'validation' ? 'validation images' : 'cross-validation folds of the good images'}): ` +
    `t ${rule === 'good-quantile' ? 'at a high quantile of the good scores' : 'the highest that accepts at most the allowed share of the defective images'}, ` +
    'min the lowest calibration score, max = 2t − min. ' +
    `Input: RGB stretched to ${geometry.width}×${geometry.height} (the training images' median aspect ratio), float32 NCHW 0..1; ` +
    'the ImageNet mean/std normalisation is inside the graph.'
  );
}
