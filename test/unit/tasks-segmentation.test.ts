import { describe, expect, it } from 'vitest';
import { segmentationManifestSchema, type SegmentationManifest } from '../../src/inference/tasks/segmentation.js';
import { letterboxGeometry, stretchGeometry } from '../../src/inference/preprocess.js';
import { classMap, maskValues, pixelScale, segmentationMeasures } from '../../src/inference/tasks/segmentation.js';
import type { GrayOverlay } from '../../src/inference/tasks/types.js';

function manifest(over: Record<string, unknown> = {}): SegmentationManifest {
  const labels = (over.labels as string[] | undefined) ?? ['background', 'scratch', 'stain'];
  const background = (over.background as string | undefined) ?? 'background';
  return segmentationManifestSchema.parse({
    id: 'seg', version: '1', task: 'segmentation', sha256: 'a'.repeat(64),
    measures: labels.filter((l) => l !== background).map((l) => `area_px:${l}`),
    labels,
    input: { name: 'input', width: 4, height: 4 },
    outputs: { mask: 'mask', layout: 'scores' },
    card: { description: '', data: '', method: '', reproduce: '', metrics: {}, license: '' },
    ...over,
  });
}

/** [1, C, H, W] from per-class planes given row by row. */
function scores(planes: number[][][]): { mask: { dims: number[]; data: Float32Array; type: string } } {
  const c = planes.length;
  const h = planes[0]!.length;
  const w = planes[0]![0]!.length;
  return { mask: { dims: [1, c, h, w], data: Float32Array.from(planes.flat(2)), type: 'float32' } };
}

const plane = (h: number, w: number, f: (x: number, y: number) => number) => Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => f(x, y)));

describe('decoding segmentation outputs', () => {
  it('[N, C, H, W] scores: the highest class per pixel (the first on a tie)', () => {
    const out = scores([
      [[0.5, 0.5], [0.5, 0.5]],
      [[0.9, 0.1], [0.5, 0.1]],
      [[0.1, 0.9], [0.1, 0.1]],
    ]);
    expect([...classMap(manifest(), out).classes]).toEqual([1, 2, 0, 0]);
  });

  it('[N, 1, H, W] probability: at or above maskThreshold is the defect', () => {
    const m = manifest({ labels: ['background', 'defect'], outputs: { mask: 'mask', layout: 'probability' }, maskThreshold: 0.6 });
    const out = { mask: { dims: [1, 1, 2, 2], data: Float32Array.from([0.59, 0.6, 0.9, 0.1]), type: 'float32' } };
    expect([...classMap(m, out).classes]).toEqual([0, 1, 1, 0]);
    const byDefault = manifest({ labels: ['background', 'defect'], outputs: { mask: 'mask', layout: 'probability' } });
    expect([...classMap(byDefault, out).classes]).toEqual([1, 1, 1, 0]);
  });

  it('[N, H, W] class indices, int64 or float', () => {
    const m = manifest({ outputs: { mask: 'mask', layout: 'indices' } });
    expect([...classMap(m, { mask: { dims: [1, 2, 2], data: BigInt64Array.from([0n, 1n, 2n, 1n]), type: 'int64' } }).classes]).toEqual([0, 1, 2, 1]);
    expect([...classMap(m, { mask: { dims: [1, 1, 2, 2], data: Float32Array.from([2, 2, 0, 1]), type: 'float32' } }).classes]).toEqual([2, 2, 0, 1]);
    expect(() => classMap(m, { mask: { dims: [1, 2, 2], data: Float32Array.from([0, 7, 0, 0]), type: 'float32' } })).toThrow(/class index 7 at pixel 1, but model.json has 3 labels/);
  });

  it('throws for an output of another layout', () => {
    const out = { mask: { dims: [1, 2, 2, 2], data: new Float32Array(8), type: 'float32' } };
    expect(() => classMap(manifest(), out)).toThrow(/output "mask" has shape \[1, 2, 2, 2\], which is not a "scores" segmentation output/);
  });
});

describe('areas in original-image pixels', () => {
  it('scales each output pixel to the original image (stretch, output at half the input resolution)', () => {
    // 4×4 output of a 8×8 input of a 100×40 image: one output pixel is 100·40/16 = 250 original pixels.
    const m = manifest({ input: { name: 'input', width: 8, height: 8 } });
    const out = scores([
      plane(4, 4, () => 0.5),
      plane(4, 4, (x) => (x < 1 ? 1 : 0)), // first column: 4 pixels of scratch
      plane(4, 4, (x, y) => (x === 3 && y === 3 ? 1 : 0)), // 1 pixel of stain
    ]);
    const { measures } = segmentationMeasures(m, out, stretchGeometry(100, 40, 8, 8));
    expect(Object.fromEntries(measures)).toEqual({ 'area_px:scratch': 1000, 'area_px:stain': 250 });
  });

  it('does not count letterbox padding, and crops it off the mask overlay', () => {
    // 8×4 image letterboxed into 8×8 (scale 1, 2-px bars above and below), output 8×8.
    const g = letterboxGeometry(8, 4, 8, 8);
    expect(g).toMatchObject({ padY: 2, contentHeight: 4 });
    expect(pixelScale(g, 8, 8)).toMatchObject({ area: 1, x0: 0, x1: 8, y0: 2, y1: 6 });
    const m = manifest({ input: { name: 'input', width: 8, height: 8, resize: 'letterbox' } });
    const out = scores([plane(8, 8, () => 0.5), plane(8, 8, () => 1), plane(8, 8, () => 0)]); // all scratch, padding too
    const { measures, overlays } = segmentationMeasures(m, out, g);
    expect(measures.get('area_px:scratch')).toBe(32);
    expect(overlays[0]).toMatchObject({ kind: 'mask', format: 'png', width: 8, height: 4 });
  });

  it('scales a letterboxed output at a quarter of the input resolution', () => {
    // 128×64 into 64×64 (scale 0.5, 16-px bars), output 16×16: rows 4..11 are on the image; each output pixel is 4×4 input = 8×8 original pixels.
    const g = letterboxGeometry(128, 64, 64, 64);
    expect(pixelScale(g, 16, 16)).toMatchObject({ area: 64, y0: 4, y1: 12, x0: 0, x1: 16 });
    const m = manifest({ input: { name: 'input', width: 64, height: 64, resize: 'letterbox' } });
    const out = scores([plane(16, 16, () => 0.5), plane(16, 16, () => 1), plane(16, 16, () => 0)]);
    expect(segmentationMeasures(m, out, g).measures.get('area_px:scratch')).toBe(128 * 64);
  });
});

describe('measures and the mask overlay', () => {
  it('yields area_px for every label but the background, wherever the background is', () => {
    const m = manifest({ labels: ['scratch', 'bg', 'stain'], background: 'bg' });
    const out = scores([plane(2, 2, () => 0), plane(2, 2, () => 1), plane(2, 2, (x) => (x === 0 ? 2 : 0))]);
    const { measures, overlays } = segmentationMeasures(m, out, stretchGeometry(2, 2, 4, 4));
    expect(Object.fromEntries(measures)).toEqual({ 'area_px:scratch': 0, 'area_px:stain': 2 });
    // Encoding: background 0, other labels in order 1..K scaled to 255: scratch 128, stain 255.
    expect([...maskValues(m)]).toEqual([128, 0, 255]);
    expect([...(overlays[0] as GrayOverlay).pixels]).toEqual([255, 0, 255, 0]);
  });

  it('encodes label index × 255 / (labels − 1) with the background first; a two-label mask is 0 / 255', () => {
    expect([...maskValues(manifest({ labels: ['background', 'a', 'b', 'c'] }))]).toEqual([0, 85, 170, 255]);
    expect([...maskValues(manifest({ labels: ['background', 'defect'], outputs: { mask: 'mask', layout: 'probability' } }))]).toEqual([0, 255]);
  });

  it('stores the overlay at the output resolution', () => {
    const m = manifest({ input: { name: 'input', width: 8, height: 8 } });
    const out = scores([plane(2, 4, () => 0.5), plane(2, 4, (x) => (x < 2 ? 1 : 0)), plane(2, 4, () => 0)]);
    const { overlays } = segmentationMeasures(m, out, stretchGeometry(640, 480, 8, 8));
    expect(overlays).toHaveLength(1);
    const o = overlays[0] as GrayOverlay;
    expect([o.width, o.height]).toEqual([4, 2]);
    expect([...o.pixels]).toEqual([128, 128, 0, 0, 128, 128, 0, 0]);
  });
});
