/**
 * The ONNX graphs of the pretrained method, built in Node:
 *   feature graph   input [N,3,H,W] → features [N, tiles·positions, dims]   (used while fitting)
 *   model graph     input → pred_score [N], anomaly_map [N,1,H,W]          (what the registry runs)
 * Both share the feature part, so the fitted statistics see exactly the features the model computes:
 *   1. tiles cut from the input (one tile = the whole input when not tiled), stacked on the batch axis;
 *   2. the backbone's two taps (stride 8 and 16), each averaged over its 3×3 neighbourhood (locally
 *      aware features, as PatchCore), the coarser one resized onto the finer grid, concatenated;
 *   3. a fixed subset of the channels (PaDiM's random selection) to keep the statistics small.
 * The model graph then computes each position's Mahalanobis distance (one batched MatMul with the
 * whitening matrices), upsamples each tile's distance grid to its pixels, stitches the tiles
 * (maximum where they overlap) and normalises as anomalib: clamp((x − t)/(max − min) + 0.5, 0, 1).
 * The image score is the largest distance on the grids, normalised the same way.
 * Every shape but the batch is fixed, so any batch size runs.
 */
import { addBackbone, type BackboneGraph } from './backbone.js';
import { toHalfArray } from './float16.js';
import type { GaussianStatistics } from './gaussian-statistics.js';
import type { InputGeometry } from './input-geometry.js';
import { GraphBuilder } from './onnx-graph.js';

export interface FeatureLayout {
  geometry: InputGeometry;
  /** Indices into the concatenated channels of both taps (finest tap's first). */
  channels: readonly number[];
}

export interface FeatureGrid {
  stride: number;
  tileGridWidth: number;
  tileGridHeight: number;
  /** Positions of all tiles together (the statistics' positions). */
  positions: number;
}

export function featureGrid(backbone: BackboneGraph, geometry: InputGeometry): FeatureGrid {
  const stride = (backbone.spec.taps[0] as { stride: number }).stride;
  const coarsest = Math.max(...backbone.spec.taps.map((t) => t.stride));
  const tile = geometry.tiles[0];
  if (!tile) throw new RangeError('no tiles');
  if (tile.width % coarsest !== 0 || tile.height % coarsest !== 0) throw new RangeError(`tile ${tile.width}×${tile.height}: sides must be multiples of ${coarsest}`);
  const tileGridWidth = tile.width / stride;
  const tileGridHeight = tile.height / stride;
  return { stride, tileGridWidth, tileGridHeight, positions: geometry.tiles.length * tileGridWidth * tileGridHeight };
}

export const totalChannels = (backbone: BackboneGraph): number => backbone.spec.taps.reduce((sum, t) => sum + t.channels, 0);

/** Adds steps 1–3; returns the features [N, tiles·positions, dims]. */
function addFeatures(g: GraphBuilder, input: string, backbone: BackboneGraph, layout: FeatureLayout): string {
  const { geometry, channels } = layout;
  const grid = featureGrid(backbone, geometry);
  const tiles = geometry.tiles;
  let stacked = input;
  if (tiles.length > 1 || tiles[0]?.width !== geometry.width || tiles[0]?.height !== geometry.height) {
    const cuts = tiles.map((t, i) =>
      g.op('Slice', [input, g.int64Tensor(`tile${i}_starts`, [t.y, t.x]), g.int64Tensor(`tile${i}_ends`, [t.y + t.height, t.x + t.width]), g.int64Tensor(`tile${i}_axes`, [2, 3])], {}, `tile${i}`),
    );
    // Tile-major on the batch axis: [tile 0 of every image, tile 1 of every image, …].
    stacked = cuts.length === 1 ? (cuts[0] as string) : g.op('Concat', cuts, { axis: { int: 0 } }, 'tiles');
  }
  const taps = addBackbone(g, stacked, backbone);
  const aggregated = taps.map((tap, i) => {
    const pooled = g.op('AveragePool', [tap], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] }, strides: { ints: [1, 1] } }, `tap${i + 1}_local`);
    const factor = (backbone.spec.taps[i] as { stride: number }).stride / grid.stride;
    if (factor === 1) return pooled;
    return g.op(
      'Resize',
      [pooled, '', g.floatTensor(`tap${i + 1}_scales`, [1, 1, factor, factor], [4])],
      { mode: { string: 'linear' }, coordinate_transformation_mode: { string: 'half_pixel' } },
      `tap${i + 1}_on_grid`,
    );
  });
  const concatenated = g.op('Concat', aggregated, { axis: { int: 1 } }, 'features_all_channels');
  const selected = g.op('Gather', [concatenated, g.int64Tensor('selected_channels', [...channels])], { axis: { int: 1 } }, 'features_selected');
  const dims = channels.length;
  const perTile = grid.tileGridWidth * grid.tileGridHeight;
  // [tiles·N, dims, h, w] → [tiles, N, dims, h·w] → [N, tiles, h·w, dims] → [N, tiles·h·w, dims]
  const split = g.op('Reshape', [selected, g.int64Tensor('features_split_shape', [tiles.length, -1, dims, perTile])], {}, 'features_split');
  const ordered = g.op('Transpose', [split], { perm: { ints: [1, 0, 3, 2] } }, 'features_ordered');
  return g.op('Reshape', [ordered, g.int64Tensor('features_shape', [-1, tiles.length * perTile, dims])], {}, 'features');
}

export function buildFeatureGraph(backbone: BackboneGraph, layout: FeatureLayout): Uint8Array {
  const g = new GraphBuilder('visq_pretrained_features');
  const input = g.input('input', ['batch_size', 3, layout.geometry.height, layout.geometry.width]);
  const features = addFeatures(g, input, backbone, layout);
  g.output(features, 'features', ['batch_size', featureGrid(backbone, layout.geometry).positions, layout.channels.length]);
  return g.toBytes();
}

export interface PretrainedModelSpec {
  backbone: BackboneGraph;
  layout: FeatureLayout;
  statistics: GaussianStatistics;
  /** Null: raw distances (for checks); otherwise the fitted normalisation. */
  normalization: { threshold: number; min: number; max: number } | null;
  metadata?: Record<string, string>;
  docString?: string;
}

export function buildPretrainedModel(spec: PretrainedModelSpec): Uint8Array {
  const { backbone, layout, statistics } = spec;
  const { geometry } = layout;
  const grid = featureGrid(backbone, geometry);
  const dims = layout.channels.length;
  if (statistics.positions !== grid.positions || statistics.dims !== dims) {
    throw new RangeError(`statistics for ${statistics.positions} positions × ${statistics.dims}, the layout has ${grid.positions} × ${dims}`);
  }
  const g = new GraphBuilder('visq_pretrained_anomaly');
  const input = g.input('input', ['batch_size', 3, geometry.height, geometry.width]);
  const features = addFeatures(g, input, backbone, layout);

  // Mahalanobis distance per position: [P, N, d] − μ[P, 1, d], · (L⁻¹)ᵀ[P, d, d], squared norm.
  const byPosition = g.op('Transpose', [features], { perm: { ints: [1, 0, 2] } }, 'features_by_position');
  const centred = g.op('Sub', [byPosition, g.floatTensor('position_mean', statistics.mean, [grid.positions, 1, dims])], {}, 'centred');
  // Stored in half precision (float16.ts): the statistics must already be rounded to it.
  const whitening = g.op('Cast', [g.float16Tensor('position_whitening_half', toHalfArray(statistics.whiteningTransposed), [grid.positions, dims, dims])], { to: { int: 1 } }, 'position_whitening');
  const whitened = g.op('MatMul', [centred, whitening], {}, 'whitened');
  const squared = g.op('ReduceSumSquare', [whitened], { axes: { ints: [2] }, keepdims: { int: 0 } }, 'squared_distance');
  const distance = g.op('Sqrt', [squared], {}, 'distance');
  const tiles = geometry.tiles;
  const tileCount = tiles.length;
  // [P, N] → [N, P] → [N, tiles, h, w]
  const perImage = g.op('Transpose', [distance], { perm: { ints: [1, 0] } }, 'distance_per_image');
  const distanceGrids = g.op('Reshape', [perImage, g.int64Tensor('distance_grid_shape', [-1, tileCount, grid.tileGridHeight, grid.tileGridWidth])], {}, 'distance_grids');
  const rawScore = g.op('ReduceMax', [distanceGrids], { axes: { ints: [1, 2, 3] }, keepdims: { int: 0 } }, 'raw_score');

  const tileMaps = g.op(
    'Resize',
    [distanceGrids, '', g.floatTensor('map_scales', [1, 1, grid.stride, grid.stride], [4])],
    { mode: { string: 'linear' }, coordinate_transformation_mode: { string: 'half_pixel' } },
    'tile_maps',
  );
  let rawMap = tileMaps;
  const first = tiles[0] as (typeof tiles)[number];
  if (tileCount > 1 || first.width !== geometry.width || first.height !== geometry.height) {
    // Each tile's map placed on the full input (zeros elsewhere: distances are ≥ 0), then the maximum.
    const placed = tiles.map((t, i) => {
      const own = g.op('Slice', [tileMaps, g.int64Tensor(`map${i}_start`, [i]), g.int64Tensor(`map${i}_end`, [i + 1]), g.int64Tensor(`map${i}_axis`, [1])], {}, `tile${i}_map`);
      const pads = [0, 0, t.y, t.x, 0, 0, geometry.height - t.y - t.height, geometry.width - t.x - t.width];
      return g.op('Pad', [own, g.int64Tensor(`map${i}_pads`, pads)], { mode: { string: 'constant' } }, `tile${i}_placed`);
    });
    rawMap = placed.length === 1 ? (placed[0] as string) : g.op('Max', placed, {}, 'stitched_map');
  }

  let score = rawScore;
  let map = rawMap;
  if (spec.normalization) {
    const n = spec.normalization;
    const inverseRange = g.scalar('norm_inverse_range', 1 / Math.max(n.max - n.min, 1e-12));
    const threshold = g.scalar('norm_threshold', n.threshold);
    const half = g.scalar('norm_half', 0.5);
    const zero = g.scalar('clip_min', 0);
    const one = g.scalar('clip_max', 1);
    const normalise = (x: string, hint: string): string =>
      g.op('Clip', [g.op('Add', [g.op('Mul', [g.op('Sub', [x, threshold]), inverseRange]), half]), zero, one], {}, hint);
    score = normalise(rawScore, 'normalized_score');
    map = normalise(rawMap, 'normalized_anomaly_map');
  }
  g.output(score, 'pred_score', ['batch_size']);
  g.output(map, 'anomaly_map', ['batch_size', 1, geometry.height, geometry.width]);
  return g.toBytes(spec.metadata ?? {}, spec.docString ?? '');
}
