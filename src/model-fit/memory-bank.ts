/**
 * The memory bank of normal patch descriptors (as PatchCore): a small subset of the good images'
 * descriptors chosen by greedy k-center ("coreset") selection, so that every good descriptor lies
 * close to some kept one. A test descriptor's distance to its nearest kept descriptor is its anomaly
 * score: a patch unlike any patch of any good image scores high, wherever it is in the image.
 *
 * Selection is hierarchical to keep fitting fast on hundreds of images: first per image (its most
 * spread-out cells), then over the union of those. Greedy k-center picks the farthest point first,
 * so rare structures (a single pad shape, a label) survive both stages.
 */

/** Squared Euclidean distance between row `i` of `a` and row `j` of `b` (both [rows × dim]). */
function squaredDistance(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let sum = 0;
  const ai = i * dim;
  const bj = j * dim;
  for (let k = 0; k < dim; k++) {
    const d = (a[ai + k] as number) - (b[bj + k] as number);
    sum += d * d;
  }
  return sum;
}

/**
 * Greedy k-center selection of `count` rows of `points` ([rows × dim], row-major). Deterministic:
 * starts from the row farthest from the mean. Returns the chosen row indices in selection order
 * (all rows when there are no more than `count`).
 */
export function greedyCoreset(points: Float32Array, dim: number, count: number): Int32Array {
  const rows = points.length / dim;
  if (!Number.isInteger(rows)) throw new RangeError(`${points.length} values are not rows of ${dim}`);
  if (rows <= count) return Int32Array.from({ length: rows }, (_, i) => i);
  const mean = new Float32Array(dim);
  for (let r = 0; r < rows; r++) for (let k = 0; k < dim; k++) mean[k] = (mean[k] as number) + (points[r * dim + k] as number);
  for (let k = 0; k < dim; k++) mean[k] = (mean[k] as number) / rows;

  const nearest = new Float64Array(rows);
  let first = 0;
  let farthest = -1;
  for (let r = 0; r < rows; r++) {
    const d = squaredDistance(points, r, mean, 0, dim);
    if (d > farthest) {
      farthest = d;
      first = r;
    }
  }
  const chosen = new Int32Array(count);
  nearest.fill(Infinity);
  let next = first;
  for (let c = 0; c < count; c++) {
    chosen[c] = next;
    let best = -1;
    let bestIndex = 0;
    for (let r = 0; r < rows; r++) {
      let d = nearest[r] as number;
      if (d > 0) {
        const candidate = squaredDistance(points, r, points, next, dim);
        if (candidate < d) {
          d = candidate;
          nearest[r] = d;
        }
      }
      if (d > best) {
        best = d;
        bestIndex = r;
      }
    }
    next = bestIndex;
  }
  return chosen;
}

/** Copies the given rows of `points` into a new [indices.length × dim] array. */
export function takeRows(points: Float32Array, dim: number, indices: ArrayLike<number>): Float32Array {
  const out = new Float32Array(indices.length * dim);
  for (let i = 0; i < indices.length; i++) out.set(points.subarray((indices[i] as number) * dim, ((indices[i] as number) + 1) * dim), i * dim);
  return out;
}

/** [dim, cells] (channel-major, as the graph outputs) → [cells × dim] rows. */
export function channelMajorToRows(features: Float32Array, dim: number): Float32Array {
  const cells = features.length / dim;
  const rows = new Float32Array(features.length);
  for (let k = 0; k < dim; k++) for (let c = 0; c < cells; c++) rows[c * dim + k] = features[k * cells + c] as number;
  return rows;
}

/**
 * Concatenates per-image candidate rows (each [n_i × dim]) and selects `size` of them. The result
 * is the memory bank, [size × dim] (fewer rows if there are fewer candidates).
 */
export function selectMemoryBank(candidates: readonly Float32Array[], dim: number, size: number): Float32Array {
  const total = candidates.reduce((n, c) => n + c.length, 0);
  const pool = new Float32Array(total);
  let offset = 0;
  for (const c of candidates) {
    pool.set(c, offset);
    offset += c.length;
  }
  return takeRows(pool, dim, greedyCoreset(pool, dim, size));
}

/** Reference nearest-neighbour distance (for tests): min over bank rows of ‖query − row‖. */
export function nearestDistance(bank: Float32Array, dim: number, query: ArrayLike<number>): number {
  const rows = bank.length / dim;
  const q = Float32Array.from(query);
  let best = Infinity;
  for (let r = 0; r < rows; r++) best = Math.min(best, squaredDistance(bank, r, q, 0, dim));
  return Math.sqrt(best);
}
