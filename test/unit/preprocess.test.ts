import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { modelInputSchema } from '../../src/inference/manifest-fields.js';
import { pixelsKey, toInputTensor } from '../../src/inference/preprocess.js';

/** A 2×1 image: one red pixel (200, 10, 30), one blue pixel (0, 40, 250). */
const image = () => sharp(Buffer.from([200, 10, 30, 0, 40, 250]), { raw: { width: 2, height: 1, channels: 3 } }).png().toBuffer();
const input = (over: Record<string, unknown>) => modelInputSchema().parse({ name: 'input', width: 2, height: 1, ...over });

describe('toInputTensor: the tensor is exactly what the manifest states', () => {
  it('NCHW RGB, /255, no normalisation (anomalib exports normalise inside the graph)', async () => {
    const t = await toInputTensor(await image(), input({}), 1e6);
    expect(t.dims).toEqual([1, 3, 1, 2]);
    expect([...t.data].map((v) => Math.round(v * 255))).toEqual([200, 0, 10, 40, 30, 250]);
  });

  it('NHWC BGR', async () => {
    const t = await toInputTensor(await image(), input({ layout: 'NHWC', channels: 'BGR' }), 1e6);
    expect(t.dims).toEqual([1, 1, 2, 3]);
    expect([...t.data].map((v) => Math.round(v * 255))).toEqual([30, 10, 200, 250, 40, 0]);
  });

  it('mean/std per channel after /255', async () => {
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const t = await toInputTensor(await image(), input({ normalization: { mean, std } }), 1e6);
    const expected = [200, 0, 10, 40, 30, 250].map((v, i) => (v / 255 - mean[Math.floor(i / 2)]!) / std[Math.floor(i / 2)]!);
    [...t.data].forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
  });

  it('GRAY has one channel', async () => {
    const t = await toInputTensor(await image(), input({ channels: 'GRAY' }), 1e6);
    expect(t.dims).toEqual([1, 1, 1, 2]);
  });

  it('models that need the same pixels share them; others do not', () => {
    expect(pixelsKey(input({ channels: 'RGB' }))).toBe(pixelsKey(input({ channels: 'BGR', layout: 'NHWC' })));
    expect(pixelsKey(input({}))).not.toBe(pixelsKey(input({ channels: 'GRAY' })));
    expect(pixelsKey(input({}))).not.toBe(pixelsKey(input({ resize: 'letterbox' })));
    expect(pixelsKey(input({}))).not.toBe(pixelsKey(input({ width: 4 })));
  });
});
