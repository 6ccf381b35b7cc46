import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { modelInputSchema } from '../../src/inference/manifest-fields.js';
import { letterboxGeometry, stretchGeometry, toInputTensor } from '../../src/inference/preprocess.js';

/** Preprocessing as Ultralytics' LetterBox does it, so boxes map back to the right pixels. */
describe('letterbox geometry (Ultralytics LetterBox, auto=False, center=True)', () => {
  it.each([
    // source w×h, input w×h → content w×h, pad left/top
    [128, 64, 64, 64, 64, 32, 0, 16],
    [810, 1080, 640, 640, 480, 640, 80, 0],
    [1280, 720, 640, 640, 640, 360, 0, 140],
    // 100×51 into 64: r = 0.64, height round(32.64) = 33, 31 px of padding: 15 above, 16 below.
    [100, 51, 64, 64, 64, 33, 0, 15],
    // scale-up as Ultralytics does by default (scaleup=True).
    [32, 16, 64, 64, 64, 32, 0, 16],
    // 50×45 into 64×64: r 1.28, width 64, height round(57.6) = 58, 6 px of padding.
    [50, 45, 64, 64, 64, 58, 0, 3],
    // 3×1 into 10×10: r = 3.333, height round(3.333) = 3, pad 7 → 3 above, 4 below.
    [3, 1, 10, 10, 10, 3, 0, 3],
  ])('%i×%i into %i×%i: content %i×%i at (%i, %i)', (sw, sh, iw, ih, cw, ch, px, py) => {
    const g = letterboxGeometry(sw, sh, iw, ih);
    expect(g).toMatchObject({ contentWidth: cw, contentHeight: ch, padX: px, padY: py, sourceWidth: sw, sourceHeight: sh });
    expect(g.scaleX).toBe(g.scaleY);
  });

  it('rounds sizes half to even, as Python’s round() does', () => {
    // 25×5 into 10×10: r = 0.4, height exactly 2.
    expect(letterboxGeometry(25, 5, 10, 10)).toMatchObject({ contentWidth: 10, contentHeight: 2, padY: 4 });
    // 10×5 into 5×5: r = 0.5, height round(2.5) = 2 (half to even), padding 3: 1 above, 2 below.
    expect(letterboxGeometry(10, 5, 5, 5)).toMatchObject({ contentWidth: 5, contentHeight: 2, padY: 1 });
  });

  it('stretch has separate scales and no padding', () => {
    expect(stretchGeometry(200, 100, 64, 64)).toMatchObject({ scaleX: 0.32, scaleY: 0.64, padX: 0, padY: 0, contentWidth: 64, contentHeight: 64 });
  });
});

describe('the letterboxed input tensor', () => {
  it('centres the image between grey-114 bars (odd padding: the extra row at the bottom)', async () => {
    // A white 100×51 image into 64×64: content rows 15..47, grey above and below.
    const png = await sharp({ create: { width: 100, height: 51, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
    const input = modelInputSchema().parse({ name: 'images', width: 64, height: 64, resize: 'letterbox' });
    const { data, dims, geometry } = await toInputTensor(png, input, 1e8);
    expect(dims).toEqual([1, 3, 64, 64]);
    expect(geometry).toMatchObject({ padY: 15, contentHeight: 33 });
    const at = (c: number, y: number, x: number) => data[c * 64 * 64 + y * 64 + x]!;
    const grey = 114 / 255;
    for (let c = 0; c < 3; c++) {
      expect(at(c, 0, 10)).toBeCloseTo(grey, 6);
      expect(at(c, 14, 40)).toBeCloseTo(grey, 6);
      expect(at(c, 15, 40)).toBeCloseTo(1, 2);
      expect(at(c, 47, 10)).toBeCloseTo(1, 2);
      expect(at(c, 48, 10)).toBeCloseTo(grey, 6);
      expect(at(c, 63, 63)).toBeCloseTo(grey, 6);
    }
  });

  it('keeps channel order and layout: RGB → BGR, NHWC', async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
    const input = modelInputSchema().parse({ name: 'x', width: 4, height: 4, layout: 'NHWC', channels: 'BGR' });
    const { data, dims, geometry } = await toInputTensor(png, input, 1e8);
    expect(dims).toEqual([1, 4, 4, 3]);
    expect([...data.slice(0, 3)]).toEqual([0, 0, 1]);
    expect(geometry).toMatchObject({ sourceWidth: 8, sourceHeight: 8, scaleX: 0.5, scaleY: 0.5 });
  });
});
