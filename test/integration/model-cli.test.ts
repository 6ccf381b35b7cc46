/**
 * `visq model fit` / `visq model eval` as a quality engineer runs them: the real CLI process on
 * small generated fixture folders (128-px images, to stay quick on 2 cores), with the default
 * method (pretrained features) and the earlier one (--method pca-patches).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../tools/fixtures/index.js';
import sharp from 'sharp';
import { loadRegistry } from '../../src/inference/model-registry.js';
import { Random } from '../../src/model-fit/random.js';
import { cli, type CliResult } from '../support/visq.js';

const SIZE = 128;
let work: string;
let goodDir: string;
let testDir: string;
let modelsDir: string;
let modelDir: string;
let fit: CliResult;

const env = {};
const json = (r: CliResult): any => {
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'visq-model-cli-'));
  const common = { partType: 'machined-surface' as const, width: SIZE, height: SIZE };
  // Training: 16 good parts, plus an unreadable "image" and a stray text file.
  await writeDataset({ ...common, outDir: join(work, 'train'), good: 16, badPerDefect: 0, seed: 811 });
  goodDir = join(work, 'train', 'good');
  await writeFile(join(goodDir, 'broken.png'), 'this is not a PNG');
  await writeFile(join(goodDir, 'notes.txt'), 'camera 3, shift 2');
  // Held-out test set in the MVTec layout: good/, bad/<defect>/, masks/<defect>/.
  await writeDataset({ ...common, outDir: join(work, 'test'), good: 8, badPerDefect: 6, seed: 812, defects: ['crack', 'pit'] });
  testDir = join(work, 'test');
  modelsDir = join(work, 'models');
  modelDir = join(modelsDir, 'pn-1001-surface');
  fit = await cli(['model', 'fit', '--good', goodDir, '--out', modelDir], env);
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('visq model fit', () => {
  it('writes a registry folder that loadRegistry accepts, with an anomaly_score measure', async () => {
    const summary = json(fit);
    expect(summary).toMatchObject({ id: 'pn-1001-surface', version: '1.0.0', method: 'pretrained', measures: ['anomaly_score'], trainingImages: 16 });
    // Square images give a square input, one view (no tiling for small images).
    expect(summary.input.width).toBe(summary.input.height);
    expect(summary.input.tiles).toBe(1);
    expect(summary.calibration).toMatchObject({ goodSource: 'cross-validation', thresholdRule: 'good-quantile', goodImages: 16, badImages: 0, falseAcceptRate: null });
    expect(summary.calibration.falseRejectRate).toBeGreaterThanOrEqual(0);
    expect(summary.calibration.falseRejectRate).toBeLessThanOrEqual(0.1);
    expect((await readdir(modelDir)).sort()).toEqual(['model.json', 'model.onnx']);
    const registry = await loadRegistry(modelsDir);
    const model = registry.get('pn-1001-surface');
    expect(model?.manifest).toMatchObject({ task: 'anomaly', measures: ['anomaly_score'], outputs: { score: 'pred_score', map: 'anomaly_map' } });
    expect(model?.manifest.sha256).toBe(summary.sha256);
  });

  it('reports the unreadable file, skips it and shows progress on stderr', () => {
    const summary = json(fit);
    expect(summary.skipped).toHaveLength(1);
    expect(summary.skipped[0].file).toBe(join(goodDir, 'broken.png'));
    expect(fit.stderr).toMatch(/skipped .*broken\.png/);
    expect(fit.stderr).toMatch(/ignoring 1 file.*notes\.txt/);
    expect(fit.stderr).toMatch(/\[features\]/);
    expect(fit.stderr).toMatch(/\[calibrate\] threshold/);
  });

  it('refuses a non-empty --out without --force; with --bad the threshold accepts at most --max-false-accept-rate of the defective images', async () => {
    const refused = await cli(['model', 'fit', '--good', goodDir, '--out', modelDir], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--out .* not empty.*--force/);

    const calibratedDir = join(work, 'calibrated');
    const forced = await cli(
      ['model', 'fit', '--good', goodDir, '--out', calibratedDir, '--id', 'pn-1001-validated', '--model-version', '2.0.0',
        '--val-good', join(testDir, 'good'), '--bad', join(testDir, 'bad'), '--max-false-accept-rate', '0.1'],
      env,
    );
    const summary = json(forced);
    expect(summary).toMatchObject({ id: 'pn-1001-validated', version: '2.0.0' });
    expect(summary.calibration).toMatchObject({ goodSource: 'validation', thresholdRule: 'max-false-accept-rate', goodImages: 8, badImages: 12 });
    expect(summary.calibration.falseAcceptRate).toBeLessThanOrEqual(0.1);
    // The published scores agree: at 0.5, at most 10 % of those defective images pass.
    const scored = json(await cli(['model', 'eval', '--model', calibratedDir, '--good', join(testDir, 'good'), '--bad', join(testDir, 'bad'), '--json'], env));
    const bad = scored.scores.filter((s: any) => s.label === 'bad');
    expect(bad.filter((s: any) => s.score < 0.5).length / bad.length).toBeLessThanOrEqual(0.1);
  }, 60_000);

  it('--method pca-patches fits the earlier patch memory bank at a square --input-size', async () => {
    const pcaDir = join(modelsDir, 'pn-1001-pca');
    const summary = json(await cli(['model', 'fit', '--method', 'pca-patches', '--good', goodDir, '--out', pcaDir, '--input-size', String(SIZE)], env));
    expect(summary).toMatchObject({ id: 'pn-1001-pca', method: 'pca-patches', inputSize: SIZE, trainingImages: 16 });
    expect((await loadRegistry(modelsDir)).get('pn-1001-pca')?.manifest.input).toMatchObject({ width: SIZE, height: SIZE });
  }, 60_000);

  it('the default --method auto fits pca-patches, and says why, when the good images are not aligned parts (crops of a board)', async () => {
    // Each "good" image a crop of one large board of traces and pads, taken somewhere else (as
    // crops of circuit-board panels are): nothing is where it was in the others. Ten images, the
    // kind of count where position seemed to explain 17 % (over the 15 % limit) before the measure
    // was corrected for the few images its position means come from.
    const textureDir = join(work, 'textures');
    await mkdir(textureDir, { recursive: true });
    const random = new Random(815);
    const board = 1024;
    const shapes = Array.from({ length: 400 }, () => {
      const [x, y] = [random.int(0, board), random.int(0, board)];
      return random.float() < 0.5
        ? `<rect x="${x}" y="${y}" width="${random.int(4, 40)}" height="${random.int(4, 40)}" fill="#d8c070"/>`
        : `<line x1="${x}" y1="${y}" x2="${x + random.int(-120, 120)}" y2="${y + random.int(-120, 120)}" stroke="#d8c070" stroke-width="${random.int(2, 8)}"/>`;
    });
    const boardPng = await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${board}" height="${board}"><rect width="100%" height="100%" fill="#1e5a32"/>${shapes.join('')}</svg>`)).png().toBuffer();
    for (let i = 0; i < 10; i++) {
      const crop = { left: random.int(0, board - SIZE), top: random.int(0, board - SIZE), width: SIZE, height: SIZE };
      await sharp(boardPng).extract(crop).toFile(join(textureDir, `crop-${i}.png`));
    }
    const result = await cli(['model', 'fit', '--good', textureDir, '--out', join(modelsDir, 'textures'), '--input-size', String(SIZE)], env);
    expect(json(result)).toMatchObject({ id: 'textures', method: 'pca-patches', trainingImages: 10 });
    expect(result.stderr).toMatch(/position explains \d+ % of the good images' feature variance.*--method auto fits pca-patches \(location-free\) instead/);
    expect((await loadRegistry(modelsDir)).get('textures')?.manifest.task).toBe('anomaly');
  }, 120_000);
});

describe('visq model eval', () => {
  it('--json prints AUROC, F1, pixel AUROC and a score per file; defects are found well above chance', async () => {
    const r = await cli(['model', 'eval', '--model', modelDir, '--good', join(testDir, 'good'), '--bad', join(testDir, 'bad'), '--masks', join(testDir, 'masks'), '--json'], env);
    const result = json(r);
    expect(Object.keys(result)).toEqual(expect.arrayContaining(['auroc', 'f1', 'pixelAuroc', 'scores']));
    expect(result.auroc).toBeGreaterThan(0.8);
    expect(result.f1).toBeGreaterThanOrEqual(0);
    expect(result.f1).toBeLessThanOrEqual(1);
    expect(result.pixelAuroc).toBeGreaterThan(0.8);
    expect(result.scores).toHaveLength(8 + 12);
    for (const s of result.scores) {
      expect(Object.keys(s).sort()).toEqual(['file', 'label', 'score']);
      expect(['good', 'bad']).toContain(s.label);
      expect(s.score).toBeGreaterThanOrEqual(0);
      expect(s.score).toBeLessThanOrEqual(1);
    }
    expect(result.scores.filter((s: any) => s.label === 'bad').every((s: any) => s.file.includes(join(testDir, 'bad')))).toBe(true);
    expect(Object.keys(result.aurocPerDefect).sort()).toEqual(['crack', 'pit']);
  });

  it('prints a readable table without --json, with pixel AUROC null when there are no masks', async () => {
    const table = await cli(['model', 'eval', '--model', modelDir, '--good', join(testDir, 'good'), '--bad', join(testDir, 'bad')], env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/image AUROC\s+\d\.\d{4}/);
    expect(table.stdout).toMatch(/pixel AUROC\s+n\/a/);
    expect(table.stdout).toMatch(/crack_000\.png\s+bad\s+\d\.\d{4}/);
    const noMasks = json(await cli(['model', 'eval', '--model', modelDir, '--good', join(testDir, 'good'), '--bad', join(testDir, 'bad'), '--json'], env));
    expect(noMasks.pixelAuroc).toBeNull();
  });

  it('skips and reports an unreadable image', async () => {
    const badDir = join(work, 'bad-with-broken');
    await mkdir(join(badDir, 'crack'), { recursive: true });
    await writeFile(join(badDir, 'crack', 'zz-broken.png'), 'nope');
    const { readFile } = await import('node:fs/promises');
    const crack = join(testDir, 'bad', 'crack', 'crack_000.png');
    await writeFile(join(badDir, 'crack', 'crack_000.png'), await readFile(crack));
    const r = await cli(['model', 'eval', '--model', modelDir, '--good', join(testDir, 'good'), '--bad', badDir, '--json'], env);
    const result = json(r);
    expect(result.scores.filter((s: any) => s.label === 'bad')).toHaveLength(1);
    expect(result.skipped.map((s: any) => s.file)).toEqual([join(badDir, 'crack', 'zz-broken.png')]);
    expect(r.stderr).toMatch(/skipped .*zz-broken\.png/);
  });
});

describe('bad usage exits 2 with a message naming what is wrong', () => {
  it.each([
    [['model', 'fit', '--good', '/nonexistent/good', '--out', '/tmp/x'], /--good \/nonexistent\/good: not a directory/],
    [['model', 'fit', '--out', '/tmp/x'], /required option '--good <dir>'/],
    [['model', 'fit', '--good', '<models>', '--out', '<work>/out-bad-id', '--id', 'Bad Id!'], /--id "Bad Id!"/],
    [['model', 'fit', '--good', '<work>/empty', '--out', '<work>/out-empty'], /--good .*empty: no images found/],
    [['model', 'fit', '--good', '<work>/train/good', '--out', '<work>/out-size', '--input-size', '100'], /--input-size 100: .*a multiple of 32/],
    [['model', 'fit', '--method', 'pca-patches', '--good', '<work>/train/good', '--out', '<work>/out-size', '--input-size', '100'], /--input-size 100: a multiple of 8/],
    [['model', 'fit', '--method', 'knn', '--good', '<work>/train/good', '--out', '<work>/out-method'], /--method.*pretrained, pca-patches/],
    [['model', 'fit', '--good', '<work>/train/good', '--out', '<work>/out-far', '--max-false-accept-rate', '0.1'], /--max-false-accept-rate needs --bad/],
    [['model', 'fit', '--good', '<work>/train/good', '--out', '<work>/out-valbad', '--val-bad', '<work>/test/bad'], /--val-bad is for --method pca-patches/],
    [['model', 'eval', '--model', '<work>/nomodel', '--good', '<work>/test/good', '--bad', '<work>/test/bad'], /--model .*nomodel: not a directory/],
    [['model', 'eval', '--model', '<work>/test', '--good', '<work>/test/good', '--bad', '<work>/test/bad'], /--model .*: no valid model\.json/],
    [['model', 'eval', '--model', '<models>/pn-1001-surface', '--good', '<work>/test/good', '--bad', '<work>/test/bad', '--masks', '<work>/empty'], /--masks .*: no mask matches/],
    [['model', 'eval', '--model', '<models>/pn-1001-surface', '--good', '<work>/test/good', '--bad', '<work>/test/bad', '--threshold', '2'], /--threshold/],
  ])('visq %j', async (args, message) => {
    await mkdir(join(work, 'empty'), { recursive: true });
    const resolved = (args as string[]).map((a) => a.replace('<work>', work).replace('<models>', modelsDir));
    const r = await cli(resolved, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
  });

  it('--help exits 0 and documents the options', async () => {
    const r = await cli(['model', 'fit', '--help'], env);
    expect(r.code).toBe(0);
    for (const option of ['--method', '--tiling', '--input-size', '--val-good', '--bad', '--max-false-accept-rate']) expect(r.stdout).toContain(option);
    expect(dirname(modelDir)).toBe(modelsDir);
  });
});
