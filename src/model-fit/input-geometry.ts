/**
 * One fixed model input size per part, from its training images: a per-position model needs every
 * image at the same geometry, and squashing an elongated part (a 500×1250 commutator) into a square
 * smears its defects. Measured on real parts: keeping the aspect ratio mattered most.
 *
 * Images much larger than the backbone's input are not shrunk into one view: they are cut into
 * overlapping tiles of the backbone's input size, each with its own statistics, and their anomaly
 * maps are stitched (maximum where tiles overlap); the image score is the maximum over tiles.
 */

/** The backbone's native input side (ImageNet training crops). */
export const TILE_SIZE = 224;
/** Model input sides are multiples of this (the coarsest tap's stride × 2, so every grid is whole). */
export const SIDE_MULTIPLE = 32;
/** Least overlap between neighbouring tiles, so a defect on a tile border is whole in one tile. */
export const MIN_TILE_OVERLAP = 32;
/**
 * Tiling is chosen automatically when the images' short side is at least this: one view would then
 * keep less than a third of their resolution. Below it (a 500×1250 commutator, a 640×640 PCB crop)
 * one view with the aspect ratio kept is used: tiling multiplies the statistics and the run time by
 * the number of tiles.
 */
export const AUTO_TILING_SHORT_SIDE = 3 * TILE_SIZE;
/** With tiling, the short side spans two overlapping tiles. */
export const TILED_SHORT_SIDE = 2 * TILE_SIZE - MIN_TILE_OVERLAP;
/** The long side is capped (the statistics grow with the area), at this many times the short side. */
export const MAX_ASPECT_RATIO = 4;

export interface Size {
  width: number;
  height: number;
}

export interface Tile {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface InputGeometry {
  /** The model input: images are stretched to this (aspect ratio of the training images kept). */
  width: number;
  height: number;
  /** One tile covering the whole input when not tiled. */
  tiles: Tile[];
}

/** auto: tiles for large images (short side ≥ AUTO_TILING_SHORT_SIDE); on: tiles whatever the size; off: one view. */
export type TilingMode = 'auto' | 'on' | 'off';

const roundTo = (value: number, multiple: number): number => Math.max(multiple, Math.round(value / multiple) * multiple);

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Tile origins along one side: as few tiles as cover it with at least MIN_TILE_OVERLAP, spread evenly. */
function tileOrigins(length: number, tile: number): number[] {
  if (length <= tile) return [0];
  const count = Math.ceil((length - MIN_TILE_OVERLAP) / (tile - MIN_TILE_OVERLAP));
  const step = (length - tile) / (count - 1);
  return Array.from({ length: count }, (_, i) => Math.round(i * step));
}

/**
 * The input geometry for images of these sizes. `shortSide` overrides the model input's short side
 * (a multiple of SIDE_MULTIPLE); the long side follows the median aspect ratio.
 */
export function inputGeometry(imageSizes: readonly Size[], options: { tiling?: TilingMode; shortSide?: number } = {}): InputGeometry {
  if (imageSizes.length === 0) throw new RangeError('no image sizes');
  const width = median(imageSizes.map((s) => s.width));
  const height = median(imageSizes.map((s) => s.height));
  const imageShort = Math.min(width, height);
  const aspect = Math.min(Math.max(width, height) / imageShort, MAX_ASPECT_RATIO);
  const mode = options.tiling ?? 'auto';
  const tiled = mode === 'on' || (mode === 'auto' && imageShort >= AUTO_TILING_SHORT_SIDE);
  const shortSide = options.shortSide ?? (tiled ? TILED_SHORT_SIDE : TILE_SIZE);
  if (shortSide % SIDE_MULTIPLE !== 0 || shortSide < SIDE_MULTIPLE * 2) throw new RangeError(`input short side ${shortSide}: a multiple of ${SIDE_MULTIPLE}, at least ${SIDE_MULTIPLE * 2}`);
  const longSide = roundTo(shortSide * aspect, SIDE_MULTIPLE);
  const size: Size = width >= height ? { width: longSide, height: shortSide } : { width: shortSide, height: longSide };
  if (!tiled) return { ...size, tiles: [{ x: 0, y: 0, ...size }] };
  // Tiles are square at the backbone's input size; a side shorter than a tile is one tile of that side.
  const tileWidth = Math.min(TILE_SIZE, size.width);
  const tileHeight = Math.min(TILE_SIZE, size.height);
  const tiles: Tile[] = [];
  for (const y of tileOrigins(size.height, tileHeight)) for (const x of tileOrigins(size.width, tileWidth)) tiles.push({ x, y, width: tileWidth, height: tileHeight });
  return { ...size, tiles };
}
