/**
 * The pretrained method's parts, each against what a user relies on: the input geometry keeps a
 * part's shape and tiles large images; the stored whitening gives the Mahalanobis distance; the
 * threshold honours the false-accept limit; and the exported graph computes what the fit scored
 * (any batch size), with a tiled anomaly map that points at the defect in full-image coordinates.
 */
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBackbone, type BackboneGraph } from '../../src/model-fit/backbone.js';
import { calibrateThreshold, normalisedScore } from '../../src/model-fit/calibration.js';
import { distances, fitGaussianStatistics, imageScore, positionExplainedVariance } from '../../src/model-fit/gaussian-statistics.js';
import { roundToHalf, toHalfBits } from '../../src/model-fit/float16.js';
import { inputGeometry, MIN_TILE_OVERLAP, SIDE_MULTIPLE, TILE_SIZE, type InputGeometry } from '../../src/model-fit/input-geometry.js';
import { channelsForBudget, DEFAULT_STATISTICS_BUDGET_BYTES, MIN_POSITION_EXPLAINED_VARIANCE, selectChannels } from '../../src/model-fit/pretrained-fit.js';
import { buildFeatureGraph, buildPretrainedModel, featureGrid, type FeatureLayout } from '../../src/model-fit/pretrained-graph.js';
import { Random } from '../../src/model-fit/random.js';

describe('input geometry', () => {
  it('keeps an elongated part elongated: short side 224, sides multiples of 32, one view', () => {
    const g = inputGeometry([{ width: 500, height: 1250 }, { width: 510, height: 1240 }, { width: 495, height: 1255 }]);
    expect(g.width).toBe(TILE_SIZE);
    expect(g.height % SIDE_MULTIPLE).toBe(0);
    expect(g.height / g.width).toBeCloseTo(1250 / 500, 0);
    expect(g.tiles).toEqual([{ x: 0, y: 0, width: g.width, height: g.height }]);
  });

  it('cuts a 5-megapixel image into overlapping backbone-sized tiles that cover it, unless --tiling off', () => {
    const g = inputGeometry([{ width: 2448, height: 2048 }]);
    expect(g.tiles.length).toBeGreaterThan(1);
    for (const t of g.tiles) {
      expect([t.width, t.height]).toEqual([TILE_SIZE, TILE_SIZE]);
      expect(t.x + t.width).toBeLessThanOrEqual(g.width);
      expect(t.y + t.height).toBeLessThanOrEqual(g.height);
    }
    const xs = [...new Set(g.tiles.map((t) => t.x))].sort((a, b) => a - b);
    const ys = [...new Set(g.tiles.map((t) => t.y))].sort((a, b) => a - b);
    for (const origins of [xs, ys]) {
      expect(origins[0]).toBe(0);
      for (let i = 1; i < origins.length; i++) expect((origins[i - 1] as number) + TILE_SIZE - (origins[i] as number)).toBeGreaterThanOrEqual(MIN_TILE_OVERLAP);
    }
    expect(xs.at(-1)! + TILE_SIZE).toBe(g.width);
    expect(ys.at(-1)! + TILE_SIZE).toBe(g.height);
    expect(inputGeometry([{ width: 2448, height: 2048 }], { tiling: 'off' }).tiles).toHaveLength(1);
    // --tiling on: tiles for a smaller image too (small defects on a 640×640 board crop).
    expect(inputGeometry([{ width: 640, height: 640 }]).tiles).toHaveLength(1);
    expect(inputGeometry([{ width: 640, height: 640 }], { tiling: 'on' }).tiles.length).toBeGreaterThan(1);
  });

  it('takes the short side from --input-size and refuses one that is not a multiple of 32', () => {
    expect(inputGeometry([{ width: 300, height: 300 }], { shortSide: 320 })).toMatchObject({ width: 320, height: 320 });
    expect(() => inputGeometry([{ width: 300, height: 300 }], { shortSide: 300 })).toThrow(/multiple of 32/);
  });
});

describe('Gaussian statistics', () => {
  it('the stored whitening gives the Mahalanobis distance to the fitted Gaussian', () => {
    const random = new Random(7);
    const dims = 3;
    const samples = Array.from({ length: 50 }, () => {
      const a = random.gaussian();
      const b = random.gaussian();
      return Float32Array.from([a, a + 0.5 * b, 2 * random.gaussian()]);
    });
    const statistics = fitGaussianStatistics(samples, 1, dims, 0.01);
    // Direct computation: covariance + εI with ε 1 % of the mean variance, its inverse by
    // Gauss-Jordan, then (x − μ)ᵀ Σ⁻¹ (x − μ).
    const mean = [0, 1, 2].map((j) => samples.reduce((s, x) => s + (x[j] as number), 0) / samples.length);
    const sampleCov = [0, 1, 2].map((a) => [0, 1, 2].map((b) => samples.reduce((s, x) => s + ((x[a] as number) - mean[a]!) * ((x[b] as number) - mean[b]!), 0) / (samples.length - 1)));
    const ridge = (0.01 * (sampleCov[0]![0]! + sampleCov[1]![1]! + sampleCov[2]![2]!)) / 3;
    const cov = sampleCov.map((row, a) => row.map((v, b) => v + (a === b ? ridge : 0)));
    const inverse = invert(cov);
    const x = [1.5, -0.5, 3];
    const c = x.map((v, j) => v - mean[j]!);
    const expected = Math.sqrt(c.reduce((s, ca, a) => s + ca * c.reduce((t, cb, b) => t + inverse[a]![b]! * cb, 0), 0));
    // The matrices are kept in half precision (11 significant bits), as the graph stores them.
    expect(Math.abs((distances(statistics, Float32Array.from(x))[0] as number) / expected - 1)).toBeLessThan(1e-3);
  });

  it('half precision: exact where representable, otherwise the nearest value', () => {
    expect(toHalfBits(1)).toBe(0x3c00);
    expect(toHalfBits(-2)).toBe(0xc000);
    expect(toHalfBits(65504)).toBe(0x7bff);
    expect(toHalfBits(1 / 3)).toBe(0x3555);
    const random = new Random(4);
    const values = Float32Array.from({ length: 1000 }, () => 100 * random.gaussian());
    const rounded = roundToHalf(Float32Array.from(values));
    values.forEach((v, i) => expect(Math.abs((rounded[i] as number) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 1e-7));
  });
});

function invert(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let i = 0; i < n; i++) {
    const pivot = a[i]![i]!;
    for (let j = 0; j < 2 * n; j++) a[i]![j]! /= pivot;
    for (let k = 0; k < n; k++) {
      if (k === i) continue;
      const f = a[k]![i]!;
      for (let j = 0; j < 2 * n; j++) a[k]![j]! -= f * a[i]![j]!;
    }
  }
  return a.map((row) => row.slice(n));
}

describe('alignment check', () => {
  it('position explains nearly all the feature variance of aligned parts and little of unaligned images', () => {
    const random = new Random(9);
    const positions = 20;
    const dims = 4;
    // Aligned: each position has its own typical feature, images vary a little around it.
    const typical = Array.from({ length: positions * dims }, () => 5 * random.gaussian());
    const aligned = Array.from({ length: 30 }, () => Float32Array.from(typical, (t) => t + 0.3 * random.gaussian()));
    // Unaligned: what a position shows is unrelated to where it is.
    const unaligned = Array.from({ length: 30 }, () => Float32Array.from({ length: positions * dims }, () => 5 * random.gaussian()));
    expect(positionExplainedVariance(aligned, positions, dims)).toBeGreaterThan(0.9);
    expect(positionExplainedVariance(unaligned, positions, dims)).toBeLessThan(MIN_POSITION_EXPLAINED_VARIANCE);
    // With few images the position means come from those same images: uncorrected, position would
    // seem to explain about 1/n (a fifth with 5 images) of anything.
    for (const n of [5, 8]) {
      const few = Array.from({ length: n }, () => Float32Array.from({ length: positions * dims }, () => 5 * random.gaussian()));
      expect(positionExplainedVariance(few, positions, dims)).toBeLessThan(0.06);
    }
  });
});

describe('threshold calibration', () => {
  it('from good images only: the threshold is a high quantile of their scores, and the report gives the share flagged', () => {
    const good = Array.from({ length: 100 }, (_, i) => i / 10);
    const c = calibrateThreshold(good);
    expect(c.rule).toBe('good-quantile');
    expect(c.falseRejectRate).toBe(good.filter((s) => s >= c.threshold).length / good.length);
    expect(c.falseRejectRate).toBeLessThanOrEqual(0.02);
    expect(normalisedScore(c.threshold, c)).toBe(0.5);
    expect(c.falseAcceptRate).toBeNull();
  });

  it('with defective images: at most the allowed share scores below the threshold, and the threshold is the highest that does so', () => {
    const random = new Random(3);
    const good = Array.from({ length: 200 }, () => random.gaussian());
    const bad = Array.from({ length: 40 }, () => 2.5 + random.gaussian());
    for (const limit of [0, 0.05, 0.2]) {
      const c = calibrateThreshold(good, bad, { maxFalseAcceptRate: limit });
      expect(c.rule).toBe('max-false-accept-rate');
      expect(c.falseAcceptRate).toBeLessThanOrEqual(limit);
      expect(bad.filter((s) => s < c.threshold).length / bad.length).toBe(c.falseAcceptRate);
      // A threshold above the next defective score would accept one more defective image than allowed.
      const next = Math.min(...bad.filter((s) => s >= c.threshold));
      expect(bad.filter((s) => s <= next).length / bad.length).toBeGreaterThan(limit);
    }
    const strict = calibrateThreshold(good, bad, { maxFalseAcceptRate: 0 });
    const lenient = calibrateThreshold(good, bad, { maxFalseAcceptRate: 0.2 });
    expect(lenient.falseRejectRate).toBeLessThanOrEqual(strict.falseRejectRate);
  });
});

describe('channel reduction', () => {
  it('keeps the statistics within the budget and picks the same channels every time', () => {
    expect(channelsForBudget(784, 128, DEFAULT_STATISTICS_BUDGET_BYTES)).toBe(128);
    const dims = channelsForBudget(2016, 128, DEFAULT_STATISTICS_BUDGET_BYTES);
    expect(2016 * dims * dims * 2).toBeLessThanOrEqual(DEFAULT_STATISTICS_BUDGET_BYTES);
    expect(dims).toBeLessThan(128);
    expect(selectChannels(128, dims)).toEqual(selectChannels(128, dims));
    expect(new Set(selectChannels(128, dims)).size).toBe(dims);
  });
});

describe('the exported graph', () => {
  let backbone: BackboneGraph;
  beforeAll(async () => {
    backbone = await loadBackbone();
  });

  /** Smooth random "parts": a gradient with mild noise, the same layout every time. */
  function goodImage(geometry: InputGeometry, random: Random): Float32Array {
    const { width, height } = geometry;
    const data = new Float32Array(3 * width * height);
    for (let c = 0; c < 3; c++) for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[(c * height + y) * width + x] = 0.3 + 0.3 * (x / width) + 0.05 * random.gaussian();
    return data;
  }

  async function features(session: ort.InferenceSession, images: Float32Array[], geometry: InputGeometry): Promise<Float32Array[]> {
    const out = await session.run({ input: new ort.Tensor('float32', concat(images), [images.length, 3, geometry.height, geometry.width]) });
    const all = out.features!.data as Float32Array;
    const per = all.length / images.length;
    return images.map((_, i) => all.slice(i * per, (i + 1) * per));
  }

  const concat = (images: Float32Array[]): Float32Array => {
    const out = new Float32Array(images.reduce((s, i) => s + i.length, 0));
    images.reduce((offset, image) => (out.set(image, offset), offset + image.length), 0);
    return out;
  };

  it('scores any batch as the fit scored each image, and its tiled anomaly map peaks where the defect is', async () => {
    const geometry = inputGeometry([{ width: 1400, height: 700 }]);
    expect(geometry.tiles.length).toBeGreaterThan(1);
    const layout: FeatureLayout = { geometry, channels: selectChannels(128, 16) };
    const grid = featureGrid(backbone, geometry);
    const random = new Random(11);
    const training = Array.from({ length: 12 }, () => goodImage(geometry, random));
    const featureSession = await ort.InferenceSession.create(buildFeatureGraph(backbone, layout));
    const statistics = fitGaussianStatistics(await features(featureSession, training, geometry), grid.positions, 16);

    // A dark square defect near the bottom-right corner, inside the last tile only.
    const defective = goodImage(geometry, random);
    const [dx, dy] = [geometry.width - 60, geometry.height - 60];
    for (let c = 0; c < 3; c++) for (let y = dy; y < dy + 24; y++) for (let x = dx; x < dx + 24; x++) defective[(c * geometry.height + y) * geometry.width + x] = 0;
    const held = [goodImage(geometry, random), defective];
    const expected = (await features(featureSession, held, geometry)).map((f) => imageScore(statistics, f));
    await featureSession.release();

    const model = await ort.InferenceSession.create(buildPretrainedModel({ backbone, layout, statistics, normalization: null }));
    const batch = await model.run({ input: new ort.Tensor('float32', concat(held), [2, 3, geometry.height, geometry.width]) });
    const scores = Array.from(batch.pred_score!.data as Float32Array);
    expect(scores[0]).toBeCloseTo(expected[0]!, 2);
    expect(scores[1]).toBeCloseTo(expected[1]!, 2);
    expect(scores[1]).toBeGreaterThan(scores[0]!);
    const single = await model.run({ input: new ort.Tensor('float32', defective, [1, 3, geometry.height, geometry.width]) });
    expect((single.pred_score!.data as Float32Array)[0]).toBeCloseTo(scores[1]!, 3);

    expect(batch.anomaly_map!.dims).toEqual([2, 1, geometry.height, geometry.width]);
    const map = (batch.anomaly_map!.data as Float32Array).subarray(geometry.width * geometry.height);
    let peak = 0;
    for (let i = 1; i < map.length; i++) if ((map[i] as number) > (map[peak] as number)) peak = i;
    const [px, py] = [peak % geometry.width, Math.floor(peak / geometry.width)];
    expect(Math.abs(px - (dx + 12))).toBeLessThan(40);
    expect(Math.abs(py - (dy + 12))).toBeLessThan(40);
    await model.release();
  }, 60_000);
});
