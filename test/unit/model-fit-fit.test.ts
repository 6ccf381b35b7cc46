import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anomalyManifestSchema } from '../../src/inference/tasks/anomaly.js';
import { writeDataset, type DatasetFiles } from '../../tools/fixtures/index.js';
import { evaluateAnomalyModel, fitAnomalyModel, type FitAnomalyModelResult } from '../../src/model-fit/index.js';
import { loadImageTensor } from '../../src/model-fit/preprocess.js';

// Small and fast: 128-px images and model (a 32×32 finest grid), 20 good training images.
const IMAGE_SIZE = 128;
const INPUT_SIZE = 128;

let workDir: string;
let training: DatasetFiles;
let test: DatasetFiles;
let fit: FitAnomalyModelResult;
let modelDir: string;
const progress: string[] = [];

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'visq-model-fit-test-'));
  const common = { partType: 'machined-surface' as const, width: IMAGE_SIZE, height: IMAGE_SIZE };
  training = await writeDataset({ ...common, outDir: join(workDir, 'train'), good: 20, badPerDefect: 0, seed: 501 });
  test = await writeDataset({ ...common, outDir: join(workDir, 'test'), good: 12, badPerDefect: 12, seed: 502, defects: ['crack', 'pit'] });
  // One unreadable file among the training images: reported and skipped, not fatal.
  const broken = join(workDir, 'train', 'good', 'broken.png');
  await writeFile(broken, 'not an image');
  modelDir = join(workDir, 'model');
  fit = await fitAnomalyModel({
    goodImages: [...training.good, broken],
    outDir: modelDir,
    id: 'test-anomaly',
    version: '0.0.1',
    inputSize: INPUT_SIZE,
    onProgress: ({ stage, message }) => progress.push(`${stage}: ${message}`),
  });
}, 60_000);

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('fitAnomalyModel', () => {
  it('writes a manifest that anomalyManifestSchema accepts, matching the ONNX file', async () => {
    const manifest = anomalyManifestSchema.parse(JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8')));
    const onnxBytes = await readFile(join(modelDir, 'model.onnx'));
    expect(manifest.sha256).toBe(createHash('sha256').update(onnxBytes).digest('hex'));
    expect(manifest).toMatchObject({
      id: 'test-anomaly',
      version: '0.0.1',
      task: 'anomaly',
      file: 'model.onnx',
      measures: ['anomaly_score'],
      input: { name: 'input', width: INPUT_SIZE, height: INPUT_SIZE, layout: 'NCHW', channels: 'RGB', normalization: null },
      outputs: { score: 'pred_score', map: 'anomaly_map' },
      scoreNormalization: null,
    });
    for (const field of ['description', 'data', 'method', 'reproduce', 'license'] as const) expect(manifest.card[field].length).toBeGreaterThan(0);
    expect(manifest.card.metrics).toHaveProperty('calibration');
  });

  it('reports the unreadable file and fits on the rest', () => {
    expect(fit.skipped.map((s) => s.file)).toEqual([join(workDir, 'train', 'good', 'broken.png')]);
    expect(fit.trainingImages).toBe(20);
    expect(progress.some((line) => line.includes('skipped') && line.includes('broken.png'))).toBe(true);
  });

  it('calibrates from cross-validated good scores when there is no validation set', () => {
    expect(fit.calibration.goodSource).toBe('cross-validation');
    expect(fit.calibration.thresholdRule).toBe('good-quantile');
    expect(fit.calibration.goodScores.length).toBe(20);
    const { threshold, min, max } = fit.calibration.normalization;
    expect(min).toBeLessThanOrEqual(threshold);
    expect(threshold).toBeLessThanOrEqual(max);
  });

  it('is an opset-14 ONNX model that onnxruntime runs with the declared output shapes', async () => {
    const model = onnxProto.onnx.ModelProto.decode(await readFile(join(modelDir, 'model.onnx')));
    expect(model.opsetImport.map((o) => Number(o.version))).toEqual([14]);
    expect(model.graph?.input?.map((i) => i.name)).toEqual(['input']);

    const session = await ort.InferenceSession.create(join(modelDir, 'model.onnx'));
    try {
      expect(session.inputNames).toEqual(['input']);
      expect([...session.outputNames].sort()).toEqual(['anomaly_map', 'pred_score']);
      // A batch of two: the batch axis is dynamic.
      const a = await loadImageTensor(test.good[0] as string, INPUT_SIZE, INPUT_SIZE);
      const b = await loadImageTensor(test.bad.get('crack')?.[0] as string, INPUT_SIZE, INPUT_SIZE);
      const batch = new Float32Array(a.data.length * 2);
      batch.set(a.data, 0);
      batch.set(b.data, a.data.length);
      const outputs = await session.run({ input: new ort.Tensor('float32', batch, [2, 3, INPUT_SIZE, INPUT_SIZE]) });
      const score = outputs.pred_score as ort.Tensor;
      const map = outputs.anomaly_map as ort.Tensor;
      expect(score.dims).toEqual([2]);
      expect(map.dims).toEqual([2, 1, INPUT_SIZE, INPUT_SIZE]);
      const mapValues = map.data as Float32Array;
      for (const value of [...(score.data as Float32Array), ...mapValues]) {
        expect(value).toBeGreaterThanOrEqual(0);
        expect(value).toBeLessThanOrEqual(1);
      }
      // The score is the maximum of the (normalised) map, per image.
      const plane = INPUT_SIZE * INPUT_SIZE;
      for (let i = 0; i < 2; i++) {
        const max = mapValues.subarray(i * plane, (i + 1) * plane).reduce((m, v) => Math.max(m, v), 0);
        expect((score.data as Float32Array)[i]).toBeCloseTo(max, 6);
      }
    } finally {
      await session.release();
    }
  });
});

describe('fitAnomalyModel with a validation set', () => {
  it('sets the threshold at the best validation F1, so it maps to 0.5 between the classes', async () => {
    const validation = await writeDataset({
      partType: 'machined-surface',
      width: IMAGE_SIZE,
      height: IMAGE_SIZE,
      outDir: join(workDir, 'validation'),
      good: 6,
      badPerDefect: 4,
      seed: 503,
      defects: ['crack'],
    });
    const result = await fitAnomalyModel({
      goodImages: training.good,
      valGood: validation.good,
      valBad: validation.bad.get('crack'),
      outDir: join(workDir, 'model-validated'),
      id: 'test-anomaly',
      version: '0.0.2',
      inputSize: INPUT_SIZE,
    });
    expect(result.calibration.goodSource).toBe('validation');
    expect(result.calibration.thresholdRule).toBe('best-f1');
    expect(result.calibration.badScores).toHaveLength(4);
    expect(result.manifest.card.metrics.calibration).toMatchObject({ good_images: 6, bad_images: 4 });
    // Normalised validation scores: most good below 0.5, most cracks at or above it.
    const normalise = (raw: number): number => {
      const { threshold, min, max } = result.calibration.normalization;
      return Math.min(1, Math.max(0, (raw - threshold) / (max - min) + 0.5));
    };
    const goodBelow = result.calibration.goodScores.filter((s) => normalise(s) < 0.5).length;
    const badAbove = result.calibration.badScores.filter((s) => normalise(s) >= 0.5).length;
    expect(goodBelow + badAbove).toBeGreaterThanOrEqual(8);
  }, 30_000);

  it('refuses to fit on too few readable images, and a size the grid cannot take', async () => {
    await expect(
      fitAnomalyModel({ goodImages: training.good.slice(0, 3), outDir: join(workDir, 'none'), id: 'x', version: '1', inputSize: INPUT_SIZE }),
    ).rejects.toThrow(/at least 5 readable good images/);
    await expect(fitAnomalyModel({ goodImages: training.good, outDir: join(workDir, 'none'), id: 'x', version: '1', inputSize: 30 })).rejects.toThrow(
      /multiple of 8/,
    );
  });
});

describe('evaluateAnomalyModel', () => {
  it('separates held-out defective parts from good ones', async () => {
    // Cracks: dark, thin, across the tool marks — the clearest defect at this small size.
    const cracks = test.bad.get('crack') as string[];
    const result = await evaluateAnomalyModel({ modelDir, good: test.good, bad: cracks, masks: join(workDir, 'test', 'masks') });
    expect(result.scores).toHaveLength(test.good.length + cracks.length);
    expect(result.auroc).toBeGreaterThanOrEqual(0.9);
    expect(result.maskedBadImages).toBe(cracks.length);
    expect(result.pixelAuroc).not.toBeNull();
    expect(result.pixelAuroc as number).toBeGreaterThan(0.8);
    expect(result.inferenceMsPerImage).toBeGreaterThan(0);
  });

  it('accepts masks as a map and leaves pixel AUROC out without them', async () => {
    const pits = test.bad.get('pit') as string[];
    const withMap = await evaluateAnomalyModel({ modelDir, good: test.good, bad: pits, masks: test.masks });
    expect(withMap.maskedBadImages).toBe(pits.length);
    const without = await evaluateAnomalyModel({ modelDir, good: test.good, bad: pits });
    expect(without.pixelAuroc).toBeNull();
    expect(without.auroc).toBeCloseTo(withMap.auroc, 12);
  });
});
