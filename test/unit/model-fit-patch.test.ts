import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/model-fit/random.js';
import { defectTypeOf, findMasks, idFromFolder, listImages, maskCandidates } from '../../src/model-fit/image-folders.js';
import { symmetricEigen } from '../../src/model-fit/linear-algebra.js';
import { channelMajorToRows, greedyCoreset, nearestDistance, selectMemoryBank } from '../../src/model-fit/memory-bank.js';
import { pcaFromMoments } from '../../src/model-fit/patch-fit.js';
import { FEATURE_COUNT, addGaussianGridMap, buildFeatureModel, gridSizeFor } from '../../src/model-fit/anomaly-graph.js';
import { locationExplainedVariance } from '../../src/model-fit/location-statistics.js';
import { GraphBuilder } from '../../src/model-fit/onnx-graph.js';
import { PATCH_SIZE, buildDescriptorModel, buildPatchModel, descriptorLength, patchGridSize, type PatchFeatureParameters } from '../../src/model-fit/patch-model.js';

describe('symmetricEigen', () => {
  it('decomposes a symmetric matrix: A v = λ v, orthonormal vectors, largest first', () => {
    const rng = new Random(11);
    const n = 7;
    const b = Array.from({ length: n * n }, () => rng.float() - 0.5);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j] = (a[i * n + j] as number) + (b[i * n + k] as number) * (b[j * n + k] as number);
    const { values, vectors } = symmetricEigen(a, n);
    for (let e = 0; e < n; e++) {
      if (e > 0) expect(values[e]).toBeLessThanOrEqual(values[e - 1] as number);
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let j = 0; j < n; j++) av += (a[i * n + j] as number) * (vectors[e * n + j] as number);
        expect(av).toBeCloseTo((values[e] as number) * (vectors[e * n + i] as number), 9);
      }
      for (let f = 0; f < n; f++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += (vectors[e * n + i] as number) * (vectors[f * n + i] as number);
        expect(dot).toBeCloseTo(e === f ? 1 : 0, 9);
      }
    }
  });

  it('returns the diagonal of a diagonal matrix, sorted', () => {
    const { values } = symmetricEigen([1, 0, 0, 0, 3, 0, 0, 0, 2], 3);
    expect(Array.from(values)).toEqual([3, 2, 1]);
  });
});

describe('locationExplainedVariance', () => {
  it('is near 1 when each cell has its own value and near 0 when every cell sees everything', () => {
    const rng = new Random(4);
    const cells = 16;
    // One feature: aligned = cell index plus a little noise; unaligned = a random cell's value.
    const aligned = Array.from({ length: 30 }, () => Float32Array.from({ length: cells }, (_, c) => c + 0.01 * rng.gaussian()));
    const shuffled = Array.from({ length: 30 }, () => Float32Array.from({ length: cells }, () => rng.int(0, cells - 1)));
    expect(locationExplainedVariance(aligned, cells)).toBeGreaterThan(0.99);
    expect(locationExplainedVariance(shuffled, cells)).toBeLessThan(0.1);
    expect(locationExplainedVariance([new Float32Array(cells), new Float32Array(cells)], cells)).toBe(0); // constant: no information
  });
});

describe('pcaFromMoments', () => {
  it('keeps the leading components and weights the scale to unit total variance', () => {
    const pca = pcaFromMoments(new Float64Array([0.5, 0.5]), new Float64Array([3, 0, 0, 1]), 2, 1);
    expect(Array.from(pca.components).map(Math.abs)).toEqual([1, 0]);
    expect(pca.weight).toBeCloseTo(1 / 2, 12);
    expect(pcaFromMoments(new Float64Array(2), new Float64Array(4), 2, 1).weight).toBe(1); // flat images
  });
});

describe('memory bank', () => {
  it('greedy k-center picks the farthest point first and covers every cluster', () => {
    // Three tight clusters and one outlier, in 2-D.
    const points: number[] = [];
    const rng = new Random(5);
    for (const [cx, cy] of [[0, 0], [10, 0], [0, 10]]) for (let i = 0; i < 50; i++) points.push((cx as number) + rng.float() * 0.1, (cy as number) + rng.float() * 0.1);
    points.push(30, 30);
    const chosen = greedyCoreset(Float32Array.from(points), 2, 4);
    expect(chosen[0]).toBe(150); // the outlier is farthest from the mean
    const clusters = new Set(Array.from(chosen).map((i) => (i === 150 ? 'outlier' : Math.floor(i / 50))));
    expect(clusters.size).toBe(4);
  });

  it('returns every row when asked for at least as many', () => {
    expect(Array.from(greedyCoreset(new Float32Array([1, 2, 3]), 1, 5))).toEqual([0, 1, 2]);
  });

  it('selects from several images and measures nearest distances', () => {
    const bank = selectMemoryBank([new Float32Array([0, 0, 1, 1]), new Float32Array([5, 5])], 2, 2);
    expect(bank).toHaveLength(4);
    expect(nearestDistance(bank, 2, [5, 6])).toBeCloseTo(1, 6);
  });

  it('channelMajorToRows transposes [D, cells] to [cells × D]', () => {
    expect(Array.from(channelMajorToRows(new Float32Array([1, 2, 3, 4, 5, 6]), 2))).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe('patch model graph', () => {
  const size = { width: 64, height: 64 };
  const scales = [{ factor: 1 as const, components: 4 }, { factor: 2 as const, components: 3 }];
  const rng = new Random(9);
  const k2 = PATCH_SIZE * PATCH_SIZE;
  const features: PatchFeatureParameters = {
    scales,
    pca: scales.map((s) => {
      const components = new Float32Array(s.components * k2);
      for (let c = 0; c < s.components; c++) for (let i = 0; i < k2; i++) components[c * k2 + i] = rng.float() - 0.5;
      return { mean: new Float32Array(k2).fill(0.4), components, weight: 0.7 };
    }),
    chromaWeight: 2,
  };
  const image = new Float32Array(3 * 64 * 64).map(() => rng.float());
  const tensor = new ort.Tensor('float32', image, [1, 3, 64, 64]);

  it('rejects sizes the scales cannot take', () => {
    expect(() => patchGridSize({ width: 60, height: 64 }, scales)).toThrow(/multiple of 8/);
    expect(patchGridSize(size, scales)).toEqual({ gridWidth: 16, gridHeight: 16 });
  });

  it('computes each cell\'s distance to its nearest memory-bank row exactly', async () => {
    const descriptorSession = await ort.InferenceSession.create(buildDescriptorModel(size, features));
    const descriptors = await descriptorSession.run({ input: tensor });
    const banks = scales.map((s) => new Float32Array(20 * descriptorLength(s)).map(() => rng.float() * 3 - 1.5));
    const model = buildPatchModel({ size, features, memoryBanks: banks, scaleWeights: null, normalization: null });
    const session = await ort.InferenceSession.create(model);
    const outputs = await session.run({ input: tensor });
    scales.forEach((scale, index) => {
      const D = descriptorLength(scale);
      const rows = channelMajorToRows(descriptors[`descriptor_${scale.factor}`]?.data as Float32Array, D);
      const distances = outputs[`distance_${scale.factor}`]?.data as Float32Array;
      expect(distances.length).toBe(rows.length / D);
      for (let cell = 0; cell < distances.length; cell += 7) {
        expect(distances[cell]).toBeCloseTo(nearestDistance(banks[index] as Float32Array, D, rows.subarray(cell * D, (cell + 1) * D)), 3);
      }
    });
    // The raw map's maximum is the image score, and it is the weighted maximum over scales.
    const map = outputs.anomaly_map?.data as Float32Array;
    expect(outputs.pred_score?.data[0]).toBeCloseTo(map.reduce((m, v) => Math.max(m, v), 0), 5);
    await session.release();
    await descriptorSession.release();
  });

  it('normalises scores as anomalib: the threshold maps to 0.5, clamped to [0, 1]', async () => {
    const banks = scales.map((s) => new Float32Array(8 * descriptorLength(s)));
    const raw = await ort.InferenceSession.create(buildPatchModel({ size, features, memoryBanks: banks, scaleWeights: [1, 0.5], normalization: null }));
    const rawScore = (await raw.run({ input: tensor })).pred_score?.data[0] as number;
    const normalization = { threshold: rawScore, min: rawScore - 1, max: rawScore + 1 };
    const normalised = await ort.InferenceSession.create(buildPatchModel({ size, features, memoryBanks: banks, scaleWeights: [1, 0.5], normalization }));
    const out = await normalised.run({ input: tensor });
    expect(out.pred_score?.data[0]).toBeCloseTo(0.5, 5);
    for (const v of out.anomaly_map?.data as Float32Array) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
  });
});

describe('image folders', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'visq-folders-'));
    for (const file of ['bad/scratch/b.png', 'bad/scratch/a.PNG', 'bad/pit/001.jpg', 'bad/readme.md', 'bad/.hidden.png', 'masks/scratch/a.PNG', 'masks/pit/001_mask.png']) {
      await mkdir(join(dir, file, '..'), { recursive: true });
      await writeFile(join(dir, file), '');
    }
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists images recursively in a stable order and sets other files aside', async () => {
    const { images, ignored } = await listImages(join(dir, 'bad'));
    expect(images).toEqual(['bad/pit/001.jpg', 'bad/scratch/a.PNG', 'bad/scratch/b.png'].map((f) => join(dir, f)));
    expect(ignored).toEqual(['readme.md']);
  });

  it('finds masks by the same relative name or MVTec\'s _mask suffix', async () => {
    const bad = (await listImages(join(dir, 'bad'))).images;
    const masks = await findMasks(join(dir, 'bad'), bad, join(dir, 'masks'));
    expect(masks.get(join(dir, 'bad/scratch/a.PNG'))).toBe(join(dir, 'masks/scratch/a.PNG'));
    expect(masks.get(join(dir, 'bad/pit/001.jpg'))).toBe(join(dir, 'masks/pit/001_mask.png'));
    expect(masks.has(join(dir, 'bad/scratch/b.png'))).toBe(false);
    expect(maskCandidates('/m', 'x/1.jpg').slice(0, 2)).toEqual(['/m/x/1.jpg', '/m/x/1.png']);
  });

  it.each([
    ['/a/PN 1001 Surface', 'pn-1001-surface'],
    ['/a/surface-anomaly', 'surface-anomaly'],
    ['/a/__', 'anomaly-model'],
    ['/a/_Top.View', 'top.view'],
  ])('idFromFolder(%s) = %s', (folder, id) => {
    expect(idFromFolder(folder)).toBe(id);
  });

  it('defectTypeOf names the first sub-folder', () => {
    expect(defectTypeOf('/b', '/b/crack/1.png')).toBe('crack');
    expect(defectTypeOf('/b', '/b/1.png')).toBeNull();
  });
});

describe('per-location Gaussian map', () => {
  it('is the smoothed Mahalanobis map dilated by one cell: a local change lifts its 3×3 neighbourhood to its maximum', async () => {
    const size = { width: 64, height: 64 };
    const { gridWidth, gridHeight } = gridSizeFor(size);
    const cells = gridWidth * gridHeight;
    const flat = new Float32Array(3 * 64 * 64).fill(0.5);
    // Statistics: the flat image's features as the mean, identity whitening.
    const featureSession = await ort.InferenceSession.create(buildFeatureModel(size));
    const mean = Float32Array.from((await featureSession.run({ input: new ort.Tensor('float32', flat, [1, 3, 64, 64]) })).features?.data as Float32Array);
    await featureSession.release();
    const whitening = new Float32Array(FEATURE_COUNT * FEATURE_COUNT * cells);
    for (let a = 0; a < FEATURE_COUNT; a++) whitening.fill(1, (a * FEATURE_COUNT + a) * cells, (a * FEATURE_COUNT + a + 1) * cells);
    const g = new GraphBuilder('gaussian_map_test');
    const input = g.input('input', [1, 3, 64, 64]);
    g.output(addGaussianGridMap(g, input, size, { mean, whitening }), 'map', [1, 1, gridHeight, gridWidth]);
    const session = await ort.InferenceSession.create(g.toBytes());
    // A dark 2×2 spot inside grid cell (8, 8) (pixels 32..35).
    const spotted = Float32Array.from(flat);
    for (let c = 0; c < 3; c++) for (let y = 33; y < 35; y++) for (let x = 33; x < 35; x++) spotted[c * 4096 + y * 64 + x] = 0.1;
    const map = (await session.run({ input: new ort.Tensor('float32', spotted, [1, 3, 64, 64]) })).map?.data as Float32Array;
    const flatMap = (await session.run({ input: new ort.Tensor('float32', flat, [1, 3, 64, 64]) })).map?.data as Float32Array;
    await session.release();
    expect(Math.max(...flatMap)).toBeLessThan(1e-3);
    const maximum = Math.max(...map);
    expect(maximum).toBeGreaterThan(0.1);
    // The first cell at the maximum in raster order is the top-left corner of its 3×3 plateau.
    const corner = map.findIndex((v) => v >= maximum - 1e-5);
    const py = Math.floor(corner / gridWidth) + 1;
    const px = (corner % gridWidth) + 1;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) expect(map[(py + dy) * gridWidth + px + dx]).toBeCloseTo(maximum, 5);
    expect(Math.abs(py - 8) + Math.abs(px - 8)).toBeLessThanOrEqual(2);
    // Far from the spot the map stays at the flat image's level.
    expect(map[1 * gridWidth + 1]).toBeLessThan(1e-3);
  });
});
