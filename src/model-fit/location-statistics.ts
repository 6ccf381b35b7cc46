/**
 * Fits, at every cell of the feature grid, a multivariate Gaussian of the features over the good
 * images (as PaDiM does with CNN features): the mean vector and a whitening matrix W = L⁻¹, where
 * L Lᵀ is the (regularised) covariance. Then ‖W (f − μ)‖² is the squared Mahalanobis distance.
 *
 * The full covariance matters: the features move together on good parts (a brighter tool-mark band
 * raises every derivative energy at once), and a per-feature z-score would count that one harmless
 * change several times; a scratch instead changes their balance, which the whitening exposes.
 */
import type { GridSize, LocationStatistics } from './anomaly-graph.js';

export interface StatisticsOptions {
  /**
   * Covariances are averaged over a (2r+1)² neighbourhood of cells: a few dozen images give a noisy
   * covariance per cell, and a direction that happens to come out with tiny variance would flag
   * every part.
   */
  neighbourhoodRadius: number;
  /**
   * Adds this fraction of each feature's median variance (over cells) to the diagonal: ridge
   * regularisation so that near-degenerate directions do not turn tiny deviations into large scores.
   */
  varianceShrinkage: number;
}

export const DEFAULT_STATISTICS_OPTIONS: StatisticsOptions = { neighbourhoodRadius: 1, varianceShrinkage: 0.05 };

function median(values: Float64Array): number {
  const sorted = Float64Array.from(values).sort();
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Inverse of the Cholesky factor of a symmetric positive-definite C×C matrix (row-major). */
export function inverseCholesky(matrix: Float64Array, size: number): Float64Array {
  const lower = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i * size + j] as number;
      for (let k = 0; k < j; k++) sum -= (lower[i * size + k] as number) * (lower[j * size + k] as number);
      if (i === j) {
        if (!(sum > 0)) throw new RangeError('covariance is not positive definite');
        lower[i * size + i] = Math.sqrt(sum);
      } else {
        lower[i * size + j] = sum / (lower[j * size + j] as number);
      }
    }
  }
  // Forward substitution, column by column, for L⁻¹ (also lower triangular).
  const inverse = new Float64Array(size * size);
  for (let column = 0; column < size; column++) {
    for (let i = column; i < size; i++) {
      let sum = i === column ? 1 : 0;
      for (let k = column; k < i; k++) sum -= (lower[i * size + k] as number) * (inverse[k * size + column] as number);
      inverse[i * size + column] = sum / (lower[i * size + i] as number);
    }
  }
  return inverse;
}

/**
 * `features`: one array per image, laid out [features, gridHeight, gridWidth].
 * Returns the mean [C, gh, gw] and the whitening matrices laid out [C(out), C(in), gh, gw], the
 * layout the graph broadcasts against.
 */
export function fitLocationStatistics(
  features: readonly Float32Array[],
  grid: GridSize,
  options: StatisticsOptions = DEFAULT_STATISTICS_OPTIONS,
): LocationStatistics {
  const { gridWidth, gridHeight } = grid;
  const cells = gridWidth * gridHeight;
  const count = features.length;
  if (count < 2) throw new RangeError('fitting a covariance needs at least two images');
  const length = (features[0] as Float32Array).length;
  const C = length / cells;
  if (!Number.isInteger(C)) throw new RangeError(`feature vector of length ${length} is not a multiple of ${cells} cells`);

  const mean = new Float64Array(length);
  for (const vector of features) {
    if (vector.length !== length) throw new RangeError(`feature vector of length ${vector.length}, expected ${length}`);
    for (let i = 0; i < length; i++) mean[i] = (mean[i] as number) + (vector[i] as number);
  }
  for (let i = 0; i < length; i++) mean[i] = (mean[i] as number) / count;

  // Per-cell covariance (upper triangle), laid out [cell][a][b].
  const covariance = new Float64Array(cells * C * C);
  const deviation = new Float64Array(C);
  for (const vector of features) {
    for (let cell = 0; cell < cells; cell++) {
      for (let a = 0; a < C; a++) deviation[a] = (vector[a * cells + cell] as number) - (mean[a * cells + cell] as number);
      const base = cell * C * C;
      for (let a = 0; a < C; a++) {
        const da = deviation[a] as number;
        for (let b = a; b < C; b++) covariance[base + a * C + b] = (covariance[base + a * C + b] as number) + da * (deviation[b] as number);
      }
    }
  }
  for (let i = 0; i < covariance.length; i++) covariance[i] = (covariance[i] as number) / (count - 1);

  // Ridge: a fraction of each feature's typical (median over cells) variance.
  const ridge = new Float64Array(C);
  for (let a = 0; a < C; a++) {
    const variances = new Float64Array(cells);
    for (let cell = 0; cell < cells; cell++) variances[cell] = covariance[cell * C * C + a * C + a] as number;
    ridge[a] = options.varianceShrinkage * median(variances) + 1e-12;
  }

  const radius = options.neighbourhoodRadius;
  const whitening = new Float32Array(C * C * cells);
  const pooled = new Float64Array(C * C);
  for (let y = 0; y < gridHeight; y++) {
    for (let x = 0; x < gridWidth; x++) {
      pooled.fill(0);
      let neighbours = 0;
      for (let yy = Math.max(0, y - radius); yy <= Math.min(gridHeight - 1, y + radius); yy++) {
        for (let xx = Math.max(0, x - radius); xx <= Math.min(gridWidth - 1, x + radius); xx++) {
          const base = (yy * gridWidth + xx) * C * C;
          for (let a = 0; a < C; a++) for (let b = a; b < C; b++) pooled[a * C + b] = (pooled[a * C + b] as number) + (covariance[base + a * C + b] as number);
          neighbours++;
        }
      }
      for (let a = 0; a < C; a++) {
        for (let b = a; b < C; b++) {
          const value = (pooled[a * C + b] as number) / neighbours + (a === b ? (ridge[a] as number) : 0);
          pooled[a * C + b] = value;
          pooled[b * C + a] = value;
        }
      }
      const inverse = inverseCholesky(pooled, C);
      const cell = y * gridWidth + x;
      for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) whitening[(a * C + b) * cells + cell] = inverse[a * C + b] as number;
    }
  }
  return { mean: Float32Array.from(mean), whitening };
}

/**
 * How much of the good images' feature variance the location explains: per feature, 1 − (mean
 * variance within a cell over the images) / (variance over all cells and images), averaged over
 * the features that vary at all. Near 0 when the images are not aligned (every cell sees every
 * kind of content, as on circuit-board panels or textures), high for parts in a fixture.
 */
export function locationExplainedVariance(features: readonly Float32Array[], cells: number): number {
  const count = features.length;
  if (count < 2) return 0;
  const C = (features[0] as Float32Array).length / cells;
  let total = 0;
  let used = 0;
  for (let f = 0; f < C; f++) {
    let within = 0;
    let sum = 0;
    let sumSquares = 0;
    for (let cell = 0; cell < cells; cell++) {
      let s1 = 0;
      let s2 = 0;
      for (const vector of features) {
        const x = vector[f * cells + cell] as number;
        s1 += x;
        s2 += x * x;
      }
      const mean = s1 / count;
      within += s2 / count - mean * mean;
      sum += s1;
      sumSquares += s2;
    }
    const n = cells * count;
    const overall = sumSquares / n - (sum / n) ** 2;
    if (!(overall > 1e-12)) continue;
    total += Math.min(1, Math.max(0, 1 - within / cells / overall));
    used++;
  }
  return used > 0 ? total / used : 0;
}
