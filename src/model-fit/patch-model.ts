/**
 * The anomaly model's ONNX graph: patch descriptors learned from the good images (PCA of
 * gray-level patches at several scales), each scored by its distance to the nearest descriptor in a
 * memory bank of good patches of that scale (as PatchCore, with a fitted linear feature extractor
 * instead of a pretrained CNN).
 *
 *   input [N,3,H,W] RGB 0..1
 *   → gray (mean of R, G, B) and two opponent-colour channels
 *   → gray pyramid (2×2 averaging) at the scales' levels
 *   → per scale s (pyramid level f): 8×8-pixel patches of level f every 4 level pixels, i.e.
 *     8f-pixel patches on a grid every 4f input pixels; each patch projected on its leading principal
 *     components (fitted on good images), plus the energy the components leave out (a patch unlike
 *     the normal ones is not well described by their patterns) and the mean colour around it;
 *     weighted so the scale's patches have unit total variance
 *   → per scale: distance to the nearest memory-bank row (one MatMul, one ReduceMin), times the
 *     scale's calibration weight (1 / a high quantile of the scale's maxima on held-out good images)
 *   → the maximum over scales, on the finest grid (coarser grids bilinearly upsampled)
 *   → bilinear upsampling to H×W = anomaly_map; pred_score = max of the map; both normalised as
 *     anomalib: clamp((x − t)/(max − min) + 0.5, 0, 1).
 *
 * The descriptor does not encode where in the image a patch is: the model needs no alignment of the
 * parts (circuit-board panels, textures, parts shifted in the fixture), and a defect is found
 * wherever it is as long as no good patch looks like it. There is no smoothing of the map: defects
 * a few pixels wide (a pin-hole, a hairline crack) cover one or two grid cells.
 */
import { FEATURE_STRIDE, addGaussianGridMap, gaussianFactor, gridOfStep, type GridSize, type LocationStatistics, type ModelSize } from './anomaly-graph.js';

export type { GridSize, ModelSize };
import { GraphBuilder } from './onnx-graph.js';

/** Patch size in pixels of its pyramid level, and the step between patches there. */
export const PATCH_SIZE = 8;
export const PATCH_STEP = 4;
const PATCH_PAD = (PATCH_SIZE - PATCH_STEP) / 2;

export interface PatchScale {
  /** Pyramid level: the gray image averaged down by this factor (1, 2, 4 or 8). */
  factor: 1 | 2 | 4 | 8;
  /** Principal components kept. */
  components: number;
}

/**
 * Patches of 8 and 16 input pixels (at the default 512-px input, 1.6 % and 3 % of the image
 * width). A third scale of 32 px lowered the real-image (DeepPCB) AUROC by 2–3 points: its patches
 * combine so many structures that no bank of practical size covers the normal ones, and a larger
 * defect is still unusual at 16 px along its edges.
 */
export const DEFAULT_SCALES: readonly PatchScale[] = [
  { factor: 1, components: 12 },
  { factor: 2, components: 12 },
];

/** anomalib's normalisation parameters, in raw-score units. */
export interface ScoreNormalization {
  threshold: number;
  min: number;
  max: number;
}

/** Grid step, in input pixels, of a scale's patches. */
export const gridStep = (scale: PatchScale): number => PATCH_STEP * scale.factor;

/** The finest grid (that of the smallest factor), on which the scales are combined. */
export function patchGridSize(size: ModelSize, scales: readonly PatchScale[]): GridSize {
  if (scales.length === 0) throw new RangeError('at least one patch scale is needed');
  gridOfStep(size, Math.max(...scales.map(gridStep)));
  return gridOfStep(size, Math.min(...scales.map(gridStep)));
}

/** Fitted PCA of one scale's patches. */
export interface ScalePca {
  /** Mean patch, PATCH_SIZE² values (row-major). */
  mean: Float32Array;
  /** Components as rows, [components × PATCH_SIZE²], unit length. */
  components: Float32Array;
  /** 1 / √(total variance of the patches), so each scale's descriptors have unit total variance. */
  weight: number;
}

export interface PatchFeatureParameters {
  scales: readonly PatchScale[];
  pca: readonly ScalePca[];
  /** Weight of the two mean-colour channels (1 / √(their variance over good images + a noise floor²)). */
  chromaWeight: number;
}

/** Descriptor length of a scale: projections, left-out energy, two colour channels. */
export const descriptorLength = (scale: PatchScale): number => scale.components + 3;

interface Pyramid {
  chroma: string;
  levels: Map<number, string>;
}

function addPyramid(g: GraphBuilder, input: string, scales: readonly PatchScale[]): Pyramid {
  // A channel mean, not a 1×1 convolution: at full resolution the convolution's blocked-layout
  // conversions cost more than the arithmetic.
  const gray = g.op('ReduceMean', [input], { axes: { ints: [1] }, keepdims: { int: 1 } }, 'gray');
  // Colour only on 4×4 blocks (one per finest grid cell): opponent red–green and yellow–blue,
  // zero for any grey whatever its brightness.
  const blocks = g.op('AveragePool', [input], { kernel_shape: { ints: [PATCH_STEP, PATCH_STEP] }, strides: { ints: [PATCH_STEP, PATCH_STEP] } }, 'rgb_blocks');
  const chroma = g.op('Conv', [blocks, g.floatTensor('w_chroma', [1, -1, 0, 0.5, 0.5, -1], [2, 3, 1, 1])], {}, 'chroma');
  const levels = new Map<number, string>([[1, gray]]);
  const deepest = Math.max(...scales.map((s) => s.factor));
  let current = gray;
  for (let factor = 2; factor <= deepest; factor *= 2) {
    current = g.op('AveragePool', [current], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } }, `gray_${factor}`);
    levels.set(factor, current);
  }
  return { chroma, levels };
}

/** A scale's level, reflect-padded so that patch i is centred on grid cell i. */
function paddedLevel(g: GraphBuilder, pyramid: Pyramid, scale: PatchScale): string {
  const level = pyramid.levels.get(scale.factor);
  if (!level) throw new RangeError(`no pyramid level ${scale.factor}`);
  const pads = g.int64Tensor(`s${scale.factor}_pads`, [0, 0, PATCH_PAD, PATCH_PAD, 0, 0, PATCH_PAD, PATCH_PAD]);
  return g.op('Pad', [level, pads], { mode: { string: 'reflect' } }, `s${scale.factor}_padded`);
}

/** Distances per chunk (cells × bank rows): 256 Ki floats, 1 MiB, fits in a core's L2 cache. */
const DISTANCE_BLOCK = 256 * 1024;

const patchConv = { strides: { ints: [PATCH_STEP, PATCH_STEP] } };

/** Graph: input → raw patches per scale `[N, PATCH_SIZE², gh, gw]` (outputs `patches_<factor>`), for the PCA fit. */
export function buildPatchSampler(size: ModelSize, scales: readonly PatchScale[]): Uint8Array {
  patchGridSize(size, scales);
  const g = new GraphBuilder('visq_patch_sampler');
  const input = g.input('input', ['batch_size', 3, size.height, size.width]);
  const pyramid = addPyramid(g, input, scales);
  const k2 = PATCH_SIZE * PATCH_SIZE;
  const identity = new Float32Array(k2 * k2);
  for (let i = 0; i < k2; i++) identity[i * k2 + i] = 1;
  const identityWeights = g.floatTensor('w_identity', identity, [k2, 1, PATCH_SIZE, PATCH_SIZE]);
  for (const scale of scales) {
    const patches = g.op('Conv', [paddedLevel(g, pyramid, scale), identityWeights], patchConv);
    const step = gridStep(scale);
    g.output(patches, `patches_${scale.factor}`, ['batch_size', k2, size.height / step, size.width / step]);
  }
  return g.toBytes();
}

/** Adds the descriptors of every scale; returns their tensor names, `[N, descriptorLength, gh_s, gw_s]`. */
function addDescriptors(g: GraphBuilder, input: string, parameters: PatchFeatureParameters): string[] {
  const { scales, pca } = parameters;
  const pyramid = addPyramid(g, input, scales);
  const k2 = PATCH_SIZE * PATCH_SIZE;
  return scales.map((scale, index) => {
    const fitted = pca[index];
    if (!fitted) throw new RangeError(`no PCA for scale ${index}`);
    const d = scale.components;
    const hint = `s${scale.factor}`;
    const padded = paddedLevel(g, pyramid, scale);
    // Projections, weighted: w·C(p − μ) = (w·C) p − w·Cμ.
    const weights = new Float32Array(d * k2);
    const bias = new Float32Array(d);
    for (let c = 0; c < d; c++) {
      let dot = 0;
      for (let i = 0; i < k2; i++) {
        const value = (fitted.components[c * k2 + i] as number) * fitted.weight;
        weights[c * k2 + i] = value;
        dot += value * (fitted.mean[i] as number);
      }
      bias[c] = -dot;
    }
    const projection = g.op(
      'Conv',
      [padded, g.floatTensor(`${hint}_w_pca`, weights, [d, 1, PATCH_SIZE, PATCH_SIZE]), g.floatTensor(`${hint}_b_pca`, bias, [d])],
      patchConv,
      `${hint}_projection`,
    );
    // Left-out energy: w²‖p − μ‖² − ‖projection‖² = w²(Σp² − 2 μ·p + ‖μ‖²) − ‖projection‖².
    const w2 = fitted.weight * fitted.weight;
    let meanNorm = 0;
    for (let i = 0; i < k2; i++) meanNorm += (fitted.mean[i] as number) ** 2;
    const squared = g.op('Mul', [padded, padded], {}, `${hint}_squared`);
    const sumSquares = g.op(
      'Conv',
      [squared, g.floatTensor(`${hint}_w_energy`, new Float32Array(k2).fill(w2), [1, 1, PATCH_SIZE, PATCH_SIZE]), g.floatTensor(`${hint}_b_energy`, [w2 * meanNorm], [1])],
      patchConv,
    );
    const cross = g.op('Conv', [padded, g.floatTensor(`${hint}_w_cross`, Float32Array.from(fitted.mean, (m) => -2 * w2 * m), [1, 1, PATCH_SIZE, PATCH_SIZE])], patchConv);
    const total = g.op('Add', [sumSquares, cross], {}, `${hint}_energy`);
    const explained = g.op('ReduceSum', [g.op('Mul', [projection, projection]), g.int64Tensor(`${hint}_axis`, [1])], { keepdims: { int: 1 } });
    const residual = g.op('Sqrt', [g.op('Relu', [g.op('Sub', [total, explained])])], {}, `${hint}_residual`);
    // Mean colour of the grid cell (chroma is on 4×4 blocks, one per finest cell).
    const colour =
      scale.factor === 1
        ? pyramid.chroma
        : g.op('AveragePool', [pyramid.chroma], { kernel_shape: { ints: [scale.factor, scale.factor] }, strides: { ints: [scale.factor, scale.factor] } }, `${hint}_colour`);
    const weightedColour = g.op('Mul', [colour, g.scalar(`${hint}_colour_weight`, parameters.chromaWeight)]);
    return g.op('Concat', [projection, residual, weightedColour], { axis: { int: 1 } }, `${hint}_descriptor`);
  });
}

/** Graph: input → descriptors per scale (outputs `descriptor_<factor>`), for building the memory banks. */
export function buildDescriptorModel(size: ModelSize, parameters: PatchFeatureParameters): Uint8Array {
  patchGridSize(size, parameters.scales);
  const g = new GraphBuilder('visq_patch_descriptor');
  const input = g.input('input', ['batch_size', 3, size.height, size.width]);
  addDescriptors(g, input, parameters).forEach((tensor, index) => {
    const scale = parameters.scales[index] as PatchScale;
    const step = gridStep(scale);
    g.output(tensor, `descriptor_${scale.factor}`, ['batch_size', descriptorLength(scale), size.height / step, size.width / step]);
  });
  return g.toBytes();
}

export interface PatchModelSpec {
  size: ModelSize;
  features: PatchFeatureParameters;
  /** One bank per scale, each [rows × descriptorLength(scale)]. */
  memoryBanks: readonly Float32Array[];
  /**
   * Per-scale calibration weights. null: the graph outputs each scale's raw distance grid
   * (`distance_<factor>`, [N,1,gh_s,gw_s]) as well, for calibrating them.
   */
  scaleWeights: readonly number[] | null;
  /**
   * The per-location Gaussian branch (anomaly-graph.ts): statistics fitted on the good images and
   * its calibration weight (null while calibrating: output `distance_gaussian` then).
   */
  gaussian?: { statistics: LocationStatistics; weight: number | null };
  /** null: raw combined scores (while calibrating); otherwise anomalib-normalised outputs. */
  normalization: ScoreNormalization | null;
  metadata?: Record<string, string>;
  docString?: string;
}

/** Adds the nearest-bank-row distance of every cell; returns `[N, 1, gh, gw]`. */
function addNearestDistance(g: GraphBuilder, descriptor: string, bank: Float32Array, length: number, grid: GridSize, hint: string): string {
  const rows = bank.length / length;
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`${hint}: memory bank of ${bank.length} values is not rows of ${length}`);
  // ‖f − m‖² = ‖f‖² + (‖m‖² − 2 f·m). With a constant 1 appended to f and ‖m‖² to −2m, one MatMul
  // gives the bracket for every bank row, and a ReduceMin finds the nearest.
  const flat = g.op('Reshape', [descriptor, g.int64Tensor(`${hint}_shape_flat`, [0, length, -1])], {}, `${hint}_flat`);
  const rowsPerCell = g.op('Transpose', [flat], { perm: { ints: [0, 2, 1] } }, `${hint}_rows`);
  const lastAxis = g.int64Tensor(`${hint}_axis_last`, [2]);
  const zeros = g.op('Slice', [g.op('Mul', [rowsPerCell, g.scalar(`${hint}_zero`, 0)]), g.int64Tensor(`${hint}_ones_start`, [0]), g.int64Tensor(`${hint}_ones_end`, [1]), lastAxis]);
  const ones = g.op('Add', [zeros, g.scalar(`${hint}_one`, 1)], {}, `${hint}_ones`);
  const augmented = g.op('Concat', [rowsPerCell, ones], { axis: { int: 2 } }, `${hint}_augmented`);
  const bankT = new Float32Array((length + 1) * rows);
  for (let r = 0; r < rows; r++) {
    let norm = 0;
    for (let k = 0; k < length; k++) {
      const value = bank[r * length + k] as number;
      bankT[k * rows + r] = -2 * value;
      norm += value * value;
    }
    bankT[length * rows + r] = norm;
  }
  const bankTensor = g.floatTensor(`${hint}_memory_bank`, bankT, [length + 1, rows]);
  // In chunks of cells, so each [cells × rows] block of distances stays in the CPU cache between
  // the MatMul that writes it and the ReduceMin that reads it (about twice as fast as one block).
  const cells = grid.gridWidth * grid.gridHeight;
  const chunks = Math.max(1, Math.min(64, Math.round((cells * rows) / DISTANCE_BLOCK)));
  let nearestPartial: string;
  if (chunks === 1) {
    const partial = g.op('MatMul', [augmented, bankTensor], {}, `${hint}_partial`);
    nearestPartial = g.op('ReduceMin', [partial], { axes: { ints: [2] }, keepdims: { int: 0 } }, `${hint}_nearest_partial`);
  } else {
    const sizes = Array.from({ length: chunks }, (_, i) => Math.floor(((i + 1) * cells) / chunks) - Math.floor((i * cells) / chunks));
    const parts = g.opMulti('Split', [augmented, g.int64Tensor(`${hint}_split`, sizes)], { axis: { int: 1 } }, chunks, `${hint}_chunk`);
    const minima = parts.map((part, i) =>
      g.op('ReduceMin', [g.op('MatMul', [part, bankTensor], {}, `${hint}_partial_${i}`)], { axes: { ints: [2] }, keepdims: { int: 0 } }, `${hint}_nearest_${i}`),
    );
    nearestPartial = g.op('Concat', minima, { axis: { int: 1 } }, `${hint}_nearest_partial`);
  }
  const ownNorm = g.op('ReduceSumSquare', [rowsPerCell], { axes: { ints: [2] }, keepdims: { int: 0 } }, `${hint}_norm`);
  const distance = g.op('Sqrt', [g.op('Relu', [g.op('Add', [nearestPartial, ownNorm])])], {}, `${hint}_nearest`);
  return g.op('Reshape', [distance, g.int64Tensor(`${hint}_shape_grid`, [0, 1, grid.gridHeight, grid.gridWidth])], {}, `${hint}_distance_grid`);
}

function upsample(g: GraphBuilder, tensor: string, factor: number, hint: string): string {
  if (factor === 1) return tensor;
  return g.op(
    'Resize',
    [tensor, '', g.floatTensor(`${hint}_scales`, [1, 1, factor, factor], [4])],
    { mode: { string: 'linear' }, coordinate_transformation_mode: { string: 'half_pixel' } },
    hint,
  );
}

/** The complete model: `input` → `pred_score [N]`, `anomaly_map [N,1,H,W]`. */
export function buildPatchModel(spec: PatchModelSpec): Uint8Array {
  const { size, features, memoryBanks, scaleWeights, normalization } = spec;
  const { scales } = features;
  patchGridSize(size, scales);
  if (memoryBanks.length !== scales.length) throw new RangeError(`${memoryBanks.length} memory banks for ${scales.length} scales`);
  if (scaleWeights && scaleWeights.length !== scales.length) throw new RangeError(`${scaleWeights.length} scale weights for ${scales.length} scales`);
  const finest = Math.min(...scales.map(gridStep));
  const g = new GraphBuilder('visq_patch_anomaly');
  const input = g.input('input', ['batch_size', 3, size.height, size.width]);
  const descriptors = addDescriptors(g, input, features);

  const combined: string[] = [];
  scales.forEach((scale, index) => {
    const step = gridStep(scale);
    const grid = { gridWidth: size.width / step, gridHeight: size.height / step };
    const hint = `s${scale.factor}`;
    const distance = addNearestDistance(g, descriptors[index] as string, memoryBanks[index] as Float32Array, descriptorLength(scale), grid, hint);
    if (!scaleWeights) g.output(distance, `distance_${scale.factor}`, ['batch_size', 1, grid.gridHeight, grid.gridWidth]);
    const weighted = g.op('Mul', [distance, g.scalar(`${hint}_weight`, scaleWeights ? (scaleWeights[index] as number) : 1)], {}, `${hint}_weighted`);
    combined.push(upsample(g, weighted, step / finest, `${hint}_on_finest_grid`));
  });
  if (spec.gaussian) {
    const factor = gaussianFactor(size);
    const step = FEATURE_STRIDE * factor;
    const map = addGaussianGridMap(g, input, size, spec.gaussian.statistics, factor);
    if (spec.gaussian.weight === null) g.output(map, 'distance_gaussian', ['batch_size', 1, size.height / step, size.width / step]);
    const weighted = g.op('Mul', [map, g.scalar('gaussian_weight', spec.gaussian.weight ?? 1)], {}, 'gaussian_weighted');
    combined.push(upsample(g, weighted, step / finest, 'gaussian_on_finest_grid'));
  }
  const gridMap = combined.length === 1 ? (combined[0] as string) : g.op('Max', combined, {}, 'grid_map');
  let map = upsample(g, gridMap, finest, 'raw_anomaly_map');
  if (normalization) {
    const range = Math.max(normalization.max - normalization.min, 1e-12);
    const shifted = g.op('Sub', [map, g.scalar('norm_threshold', normalization.threshold)]);
    const scaled = g.op('Mul', [shifted, g.scalar('norm_inverse_range', 1 / range)]);
    const centred = g.op('Add', [scaled, g.scalar('norm_half', 0.5)]);
    map = g.op('Clip', [centred, g.scalar('clip_min', 0), g.scalar('clip_max', 1)], {}, 'normalized_anomaly_map');
  }
  const score = g.op('ReduceMax', [map], { axes: { ints: [1, 2, 3] }, keepdims: { int: 0 } }, 'image_score');
  g.output(score, 'pred_score', ['batch_size']);
  g.output(map, 'anomaly_map', ['batch_size', 1, size.height, size.width]);
  return g.toBytes(spec.metadata ?? {}, spec.docString ?? '');
}
