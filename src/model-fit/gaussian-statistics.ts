/**
 * PaDiM-style statistics (Defard et al. 2021): one Gaussian per feature-map position over the
 * pretrained features there, fitted on good images only. A position's anomaly is the Mahalanobis
 * distance of its feature to that Gaussian; the image score is the maximum over positions.
 *
 * The distance is stored as a whitening matrix per position: with the covariance Σ + εI = L·Lᵀ
 * (Cholesky), d(x) = ‖L⁻¹(x − μ)‖. The graph computes it as one batched MatMul with (L⁻¹)ᵀ, so this
 * module keeps (L⁻¹)ᵀ, and `distances` computes exactly what the graph will.
 */
import { roundToHalf } from './float16.js';
import { inverseCholesky } from './location-statistics.js';

export interface GaussianStatistics {
  positions: number;
  /** Feature length per position. */
  dims: number;
  /** positions × dims. */
  mean: Float32Array;
  /** positions × dims × dims: per position the transposed inverse Cholesky factor, row-major. */
  whiteningTransposed: Float32Array;
}

/**
 * Ridge added to every covariance's diagonal, as a share of that position's mean variance: keeps it
 * invertible with fewer images than dimensions. PaDiM adds 0.01 absolute, which suits ResNet
 * features; the shipped backbone's features vary by only 0.02–0.03, where 0.01 drowned a third of
 * their variance. Relative to the features' own scale, one setting holds for any backbone. Measured
 * on four real sets (200 good images, the same channels): image AUROC +0.000 to +0.026 over 0.01
 * absolute; with 30 or 60 images as good or better on three of the four (docs/models.md).
 */
export const RELATIVE_RIDGE = 0.01;
/** A floor for positions whose features never vary (a constant border), where the relative ridge is 0. */
const MIN_RIDGE = 1e-6;

/**
 * Fits the statistics. `features[i]` is image i's positions × dims features, position-major
 * (dims values of position 0, then of position 1, …).
 */
export function fitGaussianStatistics(features: readonly Float32Array[], positions: number, dims: number, relativeRidge = RELATIVE_RIDGE): GaussianStatistics {
  const n = features.length;
  if (n < 2) throw new RangeError(`Gaussian statistics need at least 2 images, got ${n}`);
  for (const f of features) if (f.length !== positions * dims) throw new RangeError(`features of ${f.length} values for ${positions} positions × ${dims}`);
  const mean = new Float32Array(positions * dims);
  const whiteningTransposed = new Float32Array(positions * dims * dims);
  const mu = new Float64Array(dims);
  const covariance = new Float64Array(dims * dims);
  const centred = new Float64Array(dims);
  for (let p = 0; p < positions; p++) {
    const offset = p * dims;
    mu.fill(0);
    for (const f of features) for (let j = 0; j < dims; j++) mu[j] = (mu[j] as number) + (f[offset + j] as number);
    for (let j = 0; j < dims; j++) mu[j] = (mu[j] as number) / n;
    covariance.fill(0);
    for (const f of features) {
      for (let j = 0; j < dims; j++) centred[j] = (f[offset + j] as number) - (mu[j] as number);
      // Lower triangle only; mirrored below.
      for (let a = 0; a < dims; a++) {
        const ca = centred[a] as number;
        const row = a * dims;
        for (let b = 0; b <= a; b++) covariance[row + b] = (covariance[row + b] as number) + ca * (centred[b] as number);
      }
    }
    let trace = 0;
    for (let a = 0; a < dims; a++) {
      for (let b = 0; b <= a; b++) covariance[a * dims + b] = (covariance[a * dims + b] as number) / (n - 1);
      trace += covariance[a * dims + a] as number;
    }
    const ridge = Math.max((relativeRidge * trace) / dims, MIN_RIDGE);
    for (let a = 0; a < dims; a++) covariance[a * dims + a] = (covariance[a * dims + a] as number) + ridge;
    const inverseFactor = inverseCholesky(covariance, dims);
    for (let j = 0; j < dims; j++) mean[offset + j] = mu[j] as number;
    const target = p * dims * dims;
    // (L⁻¹)ᵀ[a][b] = L⁻¹[b][a]
    for (let a = 0; a < dims; a++) for (let b = 0; b < dims; b++) whiteningTransposed[target + a * dims + b] = inverseFactor[b * dims + a] as number;
  }
  // The graph stores the matrices in half precision; scoring here must use the same values.
  return { positions, dims, mean, whiteningTransposed: roundToHalf(whiteningTransposed) };
}

/** The Mahalanobis distance at every position of one image's features (as the graph computes it). */
export function distances(statistics: GaussianStatistics, features: Float32Array): Float32Array {
  const { positions, dims, mean, whiteningTransposed } = statistics;
  const out = new Float32Array(positions);
  const centred = new Float64Array(dims);
  for (let p = 0; p < positions; p++) {
    const offset = p * dims;
    for (let j = 0; j < dims; j++) centred[j] = (features[offset + j] as number) - (mean[offset + j] as number);
    const matrix = p * dims * dims;
    let squared = 0;
    for (let b = 0; b < dims; b++) {
      let value = 0;
      for (let a = 0; a < dims; a++) value += (centred[a] as number) * (whiteningTransposed[matrix + a * dims + b] as number);
      squared += value * value;
    }
    out[p] = Math.sqrt(squared);
  }
  return out;
}

/** An image's score: its largest distance. */
export function imageScore(statistics: GaussianStatistics, features: Float32Array): number {
  return distances(statistics, features).reduce((max, d) => Math.max(max, d), 0);
}

/**
 * The share of the features' variance that position explains (1 − within-position variance /
 * total variance), over good images: high when parts sit at the same place in every image (a
 * per-position model then knows what to expect where), low when every image shows a different
 * region (PCB crops), where a per-position model has nothing to go on.
 */
export function positionExplainedVariance(features: readonly Float32Array[], positions: number, dims: number): number {
  const n = features.length;
  const overallMean = new Float64Array(dims);
  for (const f of features) for (let i = 0; i < positions * dims; i++) overallMean[i % dims] = (overallMean[i % dims] as number) + (f[i] as number);
  for (let j = 0; j < dims; j++) overallMean[j] = (overallMean[j] as number) / (n * positions);
  let total = 0;
  let within = 0;
  const positionMean = new Float64Array(dims);
  for (let p = 0; p < positions; p++) {
    positionMean.fill(0);
    for (const f of features) for (let j = 0; j < dims; j++) positionMean[j] = (positionMean[j] as number) + (f[p * dims + j] as number) / n;
    for (const f of features) {
      for (let j = 0; j < dims; j++) {
        const value = f[p * dims + j] as number;
        within += (value - (positionMean[j] as number)) ** 2;
        total += (value - (overallMean[j] as number)) ** 2;
      }
    }
  }
  // Adjusted for the degrees of freedom (as adjusted R²): the position means are taken from the
  // same n images, so with few images position would seem to explain about 1/n of any variance.
  // Chance can take the adjusted share below 0, which means none.
  const withinDegrees = positions * (n - 1);
  const totalDegrees = n * positions - 1;
  return total > 0 && withinDegrees > 0 ? Math.max(0, 1 - within / withinDegrees / (total / totalDegrees)) : 0;
}
