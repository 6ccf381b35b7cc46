/**
 * Fitting the patch model's parameters from good images: the PCA of each scale's patches, the
 * colour weight, and the memory bank of good descriptors.
 */
import { Random } from './random.js';
import { symmetricEigen } from './linear-algebra.js';
import { channelMajorToRows, greedyCoreset, selectMemoryBank, takeRows } from './memory-bank.js';

/** Colour is averaged over 4×4-pixel cells (as the finest scale's descriptor does). */
const CHROMA_CELL = 4;
import {
  PATCH_SIZE,
  buildDescriptorModel,
  buildPatchSampler,
  descriptorLength,
  type ModelSize,
  type PatchFeatureParameters,
  type PatchScale,
  type ScalePca,
} from './patch-model.js';
import type { ImageTensor } from './preprocess.js';
import { createSession, runPerImage } from './runtime.js';

/** Patches sampled per image and scale for the PCA (more add little: a few thousand per scale suffice). */
const PCA_SAMPLES_PER_IMAGE = 384;
/** Colour differences below about this much (0..1 units of R−G, (R+G)/2−B) count as noise. */
const CHROMA_NOISE_FLOOR = 0.02;

/** Accumulates mean and covariance of vectors of length n (Float64, one pass, shifted by the first). */
class MomentAccumulator {
  private count = 0;
  private readonly sum: Float64Array;
  private readonly products: Float64Array;
  constructor(private readonly n: number) {
    this.sum = new Float64Array(n);
    this.products = new Float64Array(n * n);
  }
  add(values: ArrayLike<number>, offset: number, step: number): void {
    const n = this.n;
    const v = new Float64Array(n);
    for (let i = 0; i < n; i++) v[i] = values[offset + i * step] as number;
    for (let i = 0; i < n; i++) {
      const vi = v[i] as number;
      this.sum[i] = (this.sum[i] as number) + vi;
      for (let j = i; j < n; j++) this.products[i * n + j] = (this.products[i * n + j] as number) + vi * (v[j] as number);
    }
    this.count++;
  }
  result(): { mean: Float64Array; covariance: Float64Array; count: number } {
    const n = this.n;
    const mean = this.sum.map((s) => s / Math.max(this.count, 1));
    const covariance = new Float64Array(n * n);
    const denominator = Math.max(this.count - 1, 1);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const value = ((this.products[i * n + j] as number) - this.count * (mean[i] as number) * (mean[j] as number)) / denominator;
        covariance[i * n + j] = value;
        covariance[j * n + i] = value;
      }
    }
    return { mean, covariance, count: this.count };
  }
}

/** PCA of patches: mean, leading components and the weight that gives the scale unit total variance. */
export function pcaFromMoments(mean: Float64Array, covariance: Float64Array, n: number, components: number): ScalePca {
  const { values, vectors } = symmetricEigen(covariance, n);
  let trace = 0;
  for (let i = 0; i < n; i++) trace += Math.max(values[i] as number, 0);
  const kept = Math.min(components, n);
  return {
    mean: Float32Array.from(mean),
    components: Float32Array.from(vectors.subarray(0, kept * n)),
    // A flat (constant) image set has no variance: weight 1 rather than infinity.
    weight: trace > 1e-12 ? 1 / Math.sqrt(trace) : 1,
  };
}

/** Mean colour of each CHROMA_CELL² cell, straight from the input tensor (the graph's cell_chroma). */
function chromaVariance(tensors: readonly ImageTensor[]): number {
  let count = 0;
  const sum = [0, 0];
  const sumSquares = [0, 0];
  for (const { data, width, height } of tensors) {
    const plane = width * height;
    for (let cy = 0; cy + CHROMA_CELL <= height; cy += CHROMA_CELL) {
      for (let cx = 0; cx + CHROMA_CELL <= width; cx += CHROMA_CELL) {
        let rg = 0;
        let yb = 0;
        for (let y = cy; y < cy + CHROMA_CELL; y++) {
          for (let x = cx; x < cx + CHROMA_CELL; x++) {
            const i = y * width + x;
            const r = data[i] as number;
            const gr = data[plane + i] as number;
            const b = data[2 * plane + i] as number;
            rg += r - gr;
            yb += 0.5 * r + 0.5 * gr - b;
          }
        }
        const cells = CHROMA_CELL * CHROMA_CELL;
        const values = [rg / cells, yb / cells];
        for (let c = 0; c < 2; c++) {
          sum[c] = (sum[c] as number) + (values[c] as number);
          sumSquares[c] = (sumSquares[c] as number) + (values[c] as number) ** 2;
        }
        count++;
      }
    }
  }
  let variance = 0;
  for (let c = 0; c < 2; c++) variance += (sumSquares[c] as number) / count - ((sum[c] as number) / count) ** 2;
  return Math.max(variance, 0);
}

/** Fits the PCA of every scale and the colour weight on the good images. */
export async function fitPatchFeatures(tensors: readonly ImageTensor[], size: ModelSize, scales: readonly PatchScale[], seed = 1): Promise<PatchFeatureParameters> {
  const session = await createSession(buildPatchSampler(size, scales));
  const k2 = PATCH_SIZE * PATCH_SIZE;
  const accumulators = scales.map(() => new MomentAccumulator(k2));
  const random = new Random(seed);
  try {
    await runPerImage(
      session,
      'input',
      tensors,
      scales.map((s) => `patches_${s.factor}`),
      (_, outputs) => {
        scales.forEach((scale, index) => {
          const patches = outputs[`patches_${scale.factor}`] as Float32Array;
          const cells = patches.length / k2;
          const samples = Math.min(cells, PCA_SAMPLES_PER_IMAGE);
          for (let s = 0; s < samples; s++) {
            const cell = samples === cells ? s : random.int(0, cells - 1);
            (accumulators[index] as MomentAccumulator).add(patches, cell, cells);
          }
        });
      },
      4,
    );
  } finally {
    await session.release();
  }
  const pca = scales.map((scale, index) => {
    const { mean, covariance } = (accumulators[index] as MomentAccumulator).result();
    return pcaFromMoments(mean, covariance, k2, scale.components);
  });
  const chromaWeight = 1 / Math.sqrt(chromaVariance(tensors) + CHROMA_NOISE_FLOOR ** 2);
  return { scales, pca, chromaWeight };
}

export interface MemoryBankOptions {
  /** Rows of each scale's memory bank. */
  size: number;
  /** Candidates kept per image before the final selection: about this many times `size` in all. */
  oversampling: number;
}

/**
 * 1024 rows per scale keeps the model time at 512 px within 30 ms on one core. Drawing 16× as many
 * candidates (rather than 4×) raised the DeepPCB AUROC from 0.94 to 0.97: the per-image stage must
 * keep enough of each image's variety for the final selection to choose from.
 */
export const DEFAULT_MEMORY_BANK: MemoryBankOptions = { size: 1024, oversampling: 16 };

/** Per image, per scale: the image's most spread-out descriptors (rows). */
export type Candidates = Float32Array[][];

export async function descriptorCandidates(
  tensors: readonly ImageTensor[],
  size: ModelSize,
  features: PatchFeatureParameters,
  perImage: number,
  onImage?: (done: number) => void,
): Promise<Candidates> {
  const session = await createSession(buildDescriptorModel(size, features));
  const candidates: Candidates = [];
  try {
    await runPerImage(
      session,
      'input',
      tensors,
      features.scales.map((s) => `descriptor_${s.factor}`),
      (index, outputs) => {
        candidates.push(
          features.scales.map((scale) => {
            const D = descriptorLength(scale);
            const rows = channelMajorToRows(outputs[`descriptor_${scale.factor}`] as Float32Array, D);
            return takeRows(rows, D, greedyCoreset(rows, D, perImage));
          }),
        );
        onImage?.(index + 1);
      },
      4,
    );
  } finally {
    await session.release();
  }
  return candidates;
}

export function candidatesPerImage(images: number, options: MemoryBankOptions): number {
  return Math.max(16, Math.min(1024, Math.ceil((options.size * options.oversampling) / Math.max(images, 1))));
}

/** One memory bank per scale from the candidates of the given images. */
export function memoryBanksFrom(candidates: Candidates, features: PatchFeatureParameters, options: MemoryBankOptions): Float32Array[] {
  return features.scales.map((scale, index) =>
    selectMemoryBank(
      candidates.map((perImage) => perImage[index] as Float32Array),
      descriptorLength(scale),
      options.size,
    ),
  );
}
