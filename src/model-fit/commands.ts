/**
 * `visq model fit` and `visq model eval`: fitting an anomaly model for a new part from good images
 * and measuring it on labelled ones, in Node on a CPU. Progress and per-file problems go to stderr;
 * stdout gets one JSON document (fit, eval --json) or a table (eval). Exit codes as every visq
 * command: 0 ok, 2 bad usage or input (InvalidInputError), 1 anything else.
 */
import { readdir, rm } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError, type Command } from 'commander';
import { InvalidInputError } from '../errors.js';
import { measureSpecs, type MeasureSpec } from '../inference/manifest.js';
import type { AnomalyManifest } from '../inference/tasks/anomaly.js';
import { loadModelFolder, ModelLoadError, type RegisteredModel } from '../inference/model-registry.js';
import { evaluateAnomalyModel, readManifest, type EvaluationResult } from './evaluate.js';
import { DEFAULT_INPUT_SIZE, ModelFitError, fitAnomalyModel, type FitProgress } from './fit.js';
import { DEFAULT_MAX_FALSE_ACCEPT_RATE } from './calibration.js';
import { AUTO_TILING_SHORT_SIDE, SIDE_MULTIPLE, TILED_SHORT_SIDE, TILE_SIZE, type TilingMode } from './input-geometry.js';
import { fitPretrainedModel, UnalignedImagesError, type FitPretrainedModelResult } from './pretrained-fit.js';
import { MODEL_ID_PATTERN, defectTypeOf, findMasks, idFromFolder, isDirectory, listImages } from './image-folders.js';
import { auroc } from './metrics.js';

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

function unitInterval(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !(parsed >= 0 && parsed <= 1)) throw new InvalidArgumentError('expected a number from 0 to 1');
  return parsed;
}

/** The images of a folder option; bad usage (exit 2) when the folder is missing or has none. */
async function imagesIn(option: string, dir: string): Promise<string[]> {
  if (!(await isDirectory(dir))) throw new InvalidInputError('invalid_argument', `${option} ${dir}: not a directory`);
  const { images, ignored } = await listImages(dir);
  if (ignored.length > 0) log(`${option} ${dir}: ignoring ${ignored.length} file(s) that are not images by their extension (${ignored.slice(0, 3).join(', ')}${ignored.length > 3 ? ', …' : ''})`);
  if (images.length === 0) throw new InvalidInputError('invalid_argument', `${option} ${dir}: no images found (looked for .png, .jpg, .jpeg, .tif, .tiff, .webp, .bmp, .gif, also in sub-folders)`);
  return images;
}

/** Prints progress without flooding: every message without counts, and counted steps about every 10 %. */
function progressPrinter(): (p: FitProgress) => void {
  const last = new Map<string, number>();
  return ({ stage, message, done, total }) => {
    if (done !== undefined && total !== undefined && done < total) {
      const key = `${stage}:${message.split(':')[0]}`;
      const step = Math.max(1, Math.ceil(total / 10));
      if (done > 0 && done - (last.get(key) ?? 0) < step) return;
      last.set(key, done);
    }
    log(`[${stage}] ${message}`);
  };
}

export const FIT_METHODS = ['auto', 'pretrained', 'pca-patches'] as const;
export type FitMethod = (typeof FIT_METHODS)[number];

interface FitOptions {
  good: string;
  out: string;
  id?: string;
  modelVersion: string;
  method: FitMethod;
  valGood?: string;
  valBad?: string;
  bad?: string;
  maxFalseAcceptRate?: number;
  tiling: TilingMode;
  inputSize?: number;
  force?: boolean;
}

function oneOf<T extends string>(allowed: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(allowed as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}`);
    return value as T;
  };
}

async function fitCommand(options: FitOptions): Promise<void> {
  const started = performance.now();
  const id = options.id ?? idFromFolder(resolve(options.out));
  if (!MODEL_ID_PATTERN.test(id)) throw new InvalidInputError('invalid_argument', `--id "${id}": lower-case letters, digits, ".", "_" or "-", starting with a letter or digit`);
  // auto: pretrained features when the good images show aligned parts, else pca-patches.
  const pretrained = options.method !== 'pca-patches';
  if (pretrained) {
    if (options.inputSize !== undefined && (options.inputSize % SIDE_MULTIPLE !== 0 || options.inputSize < 2 * SIDE_MULTIPLE)) {
      throw new InvalidInputError('invalid_argument', `--input-size ${options.inputSize}: with --method pretrained, the short side, a multiple of ${SIDE_MULTIPLE}, at least ${2 * SIDE_MULTIPLE}`);
    }
    if (options.valBad) throw new InvalidInputError('invalid_argument', '--val-bad is for --method pca-patches; with --method pretrained give defective images as --bad (with --max-false-accept-rate)');
  } else {
    const size = options.inputSize ?? DEFAULT_INPUT_SIZE;
    if (size % 8 !== 0 || size < 64) throw new InvalidInputError('invalid_argument', `--input-size ${size}: a multiple of 8, at least 64`);
    if (options.bad || options.maxFalseAcceptRate !== undefined) throw new InvalidInputError('invalid_argument', '--bad and --max-false-accept-rate are for --method pretrained; --method pca-patches takes --val-bad (threshold at the best F1)');
  }
  if (options.maxFalseAcceptRate !== undefined && !options.bad) throw new InvalidInputError('invalid_argument', '--max-false-accept-rate needs --bad (the defective images it limits)');
  const good = await imagesIn('--good', options.good);
  const valGood = options.valGood ? await imagesIn('--val-good', options.valGood) : [];
  const valBad = options.valBad ? await imagesIn('--val-bad', options.valBad) : [];
  const bad = options.bad ? await imagesIn('--bad', options.bad) : [];

  const out = resolve(options.out);
  let outEntries: string[] = [];
  try {
    outEntries = await readdir(out);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') throw new InvalidInputError('invalid_argument', `--out ${options.out}: exists and is not a directory`);
  }
  if (outEntries.length > 0) {
    if (!options.force) throw new InvalidInputError('invalid_argument', `--out ${options.out}: exists and is not empty (use --force to replace a model there)`);
    // Only what a fit writes is replaced; anything else in the folder is left alone.
    await Promise.all(['model.onnx', 'model.json'].map((file) => rm(join(out, file), { force: true })));
  }

  const printProgress = progressPrinter();
  const data =
    `${good.length} good images from ${options.good}` +
    (valGood.length || valBad.length || bad.length
      ? `; calibration: ${valGood.length ? `${valGood.length} good from ${options.valGood}` : 'good images by cross-validation'}` +
        (valBad.length ? `, ${valBad.length} bad from ${options.valBad}` : '') +
        (bad.length ? `, ${bad.length} defective from ${options.bad}` : '')
      : '') +
    ' (fitted with visq model fit)';
  const reproduce =
    `visq model fit --method ${options.method} --good ${options.good} --out ${options.out} --id ${id} --model-version ${options.modelVersion}` +
    (pretrained ? ` --tiling ${options.tiling}` : '') +
    (options.inputSize !== undefined || !pretrained ? ` --input-size ${options.inputSize ?? DEFAULT_INPUT_SIZE}` : '') +
    (options.valGood ? ` --val-good ${options.valGood}` : '') +
    (options.valBad ? ` --val-bad ${options.valBad}` : '') +
    (options.bad ? ` --bad ${options.bad}` : '') +
    (options.maxFalseAcceptRate !== undefined ? ` --max-false-accept-rate ${options.maxFalseAcceptRate}` : '');
  const summaryHead = (m: AnomalyManifest, method: FitMethod) => ({ id: m.id, version: m.version, out, method, sha256: m.sha256, measures: m.measures });
  let summary: Record<string, unknown> | null = null;
  let skipped: { file: string; reason: string }[] = [];
  try {
    let result: FitPretrainedModelResult | null = null;
    if (pretrained) {
      try {
        result = await fitPretrainedModel({
          requireAlignment: options.method === 'auto',
          goodImages: good,
          valGood,
          bad,
          ...(options.maxFalseAcceptRate !== undefined ? { maxFalseAcceptRate: options.maxFalseAcceptRate } : {}),
          tiling: options.tiling,
          ...(options.inputSize !== undefined ? { shortSide: options.inputSize } : {}),
          outDir: out,
          id,
          version: options.modelVersion,
          onProgress: printProgress,
          card: { data, reproduce },
        });
      } catch (error) {
        if (!(error instanceof UnalignedImagesError)) throw error;
        log(`[features] ${error.message.split(';')[0]}: --method auto fits pca-patches (location-free) instead`);
      }
    }
    if (result) {
      skipped = result.skipped;
      const c = result.calibration;
      summary = {
        ...summaryHead(result.manifest, 'pretrained'),
        input: { width: result.geometry.width, height: result.geometry.height, tiles: result.geometry.tiles.length },
        modelBytes: result.modelBytes,
        trainingImages: result.trainingImages,
        skipped,
        calibration: {
          goodSource: c.goodSource,
          thresholdRule: c.rule,
          goodImages: c.goodScores.length,
          badImages: c.badScores.length,
          rawThreshold: c.threshold,
          falseRejectRate: c.falseRejectRate,
          falseAcceptRate: c.falseAcceptRate,
          ...(result.manifest.card.metrics.calibration as Record<string, unknown>),
        },
      };
    } else {
      // Under auto, --input-size and --bad were meant for the pretrained method: the square input
      // keeps its default, and the defective images set the threshold at the best F1.
      const inputSize = options.method === 'pca-patches' ? (options.inputSize ?? DEFAULT_INPUT_SIZE) : DEFAULT_INPUT_SIZE;
      const result = await fitAnomalyModel({ goodImages: good, valGood, valBad: valBad.length ? valBad : bad, outDir: out, id, version: options.modelVersion, inputSize, onProgress: printProgress, card: { data, reproduce } });
      skipped = result.skipped;
      const c = result.calibration;
      summary = {
        ...summaryHead(result.manifest, 'pca-patches'),
        inputSize,
        trainingImages: result.trainingImages,
        skipped,
        calibration: {
          goodSource: c.goodSource,
          thresholdRule: c.thresholdRule,
          goodImages: c.goodScores.length,
          badImages: c.badScores.length,
          rawThreshold: c.normalization.threshold,
          ...(result.manifest.card.metrics.calibration as Record<string, unknown>),
        },
      };
    }
  } catch (error) {
    if (error instanceof ModelFitError || error instanceof RangeError) throw new InvalidInputError('invalid_argument', error.message);
    throw error;
  }
  for (const entry of skipped) log(`skipped ${entry.file}: ${entry.reason}`);
  const seconds = (performance.now() - started) / 1000;
  log(`wrote ${join(out, 'model.onnx')} and ${join(out, 'model.json')} in ${seconds.toFixed(1)} s`);
  process.stdout.write(`${JSON.stringify({ ...(summary as Record<string, unknown>), seconds: Number(seconds.toFixed(1)) })}\n`);
}

interface EvalOptions {
  model: string;
  good: string;
  bad: string;
  masks?: string;
  json?: boolean;
  threshold: number;
}

/** AUROC of each defect type (sub-folder of --bad) against all good images. */
function perDefectAuroc(result: EvaluationResult, badDir: string): Record<string, number> {
  const good = result.scores.filter((s) => s.label === 'good').map((s) => s.score);
  const byType = new Map<string, number[]>();
  for (const s of result.scores) {
    if (s.label !== 'bad') continue;
    const type = defectTypeOf(badDir, s.file);
    if (type === null) continue;
    byType.set(type, [...(byType.get(type) ?? []), s.score]);
  }
  const out: Record<string, number> = {};
  for (const [type, bad] of [...byType].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out[type] = auroc([...good, ...bad], [...good.map(() => 0), ...bad.map(() => 1)]);
  }
  return out;
}

async function evalCommand(options: EvalOptions): Promise<void> {
  if (!(await isDirectory(options.model))) throw new InvalidInputError('invalid_argument', `--model ${options.model}: not a directory`);
  try {
    await readManifest(options.model);
  } catch (error) {
    throw new InvalidInputError('invalid_argument', `--model ${options.model}: no valid model.json (${(error as Error).message.split('\n')[0]})`);
  }
  const good = await imagesIn('--good', options.good);
  const bad = await imagesIn('--bad', options.bad);
  let masks: Map<string, string> | undefined;
  if (options.masks !== undefined) {
    if (!(await isDirectory(options.masks))) throw new InvalidInputError('invalid_argument', `--masks ${options.masks}: not a directory`);
    masks = await findMasks(options.bad, bad, options.masks);
    if (masks.size === 0) throw new InvalidInputError('invalid_argument', `--masks ${options.masks}: no mask matches a bad image (expected the same relative names as under --bad, or <name>_mask.png)`);
    if (masks.size < bad.length) log(`--masks: ${bad.length - masks.size} of ${bad.length} bad images have no mask; the pixel AUROC uses the other ${masks.size}`);
  }
  if (!options.json) log(`scoring ${good.length} good and ${bad.length} bad images with ${options.model}`);
  let result: EvaluationResult;
  try {
    result = await evaluateAnomalyModel({ modelDir: options.model, good, bad, ...(masks ? { masks } : {}), threshold: options.threshold });
  } catch (error) {
    const message = (error as Error).message;
    if (error instanceof RangeError && /AUROC needs/.test(message)) throw new InvalidInputError('invalid_argument', 'after skipping unreadable files, no good or no bad images are left to compare');
    // A model folder whose ONNX file does not match its manifest, or an input contract this
    // evaluation does not implement, is bad input too.
    if (/has sha256|supports NCHW/.test(message)) throw new InvalidInputError('invalid_argument', `--model ${options.model}: ${message}`);
    throw error;
  }
  for (const entry of result.skipped) log(`skipped ${entry.file}: ${entry.reason}`);
  const perDefect = perDefectAuroc(result, options.bad);

  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({
        auroc: result.auroc,
        f1: result.f1,
        pixelAuroc: result.pixelAuroc,
        threshold: result.threshold,
        aurocPerDefect: perDefect,
        inferenceMsPerImage: result.inferenceMsPerImage,
        skipped: result.skipped,
        scores: result.scores,
      })}\n`,
    );
    return;
  }
  const fmt = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(4));
  const rows = result.scores.map((s) => [relative(process.cwd(), s.file) || s.file, s.label, s.score.toFixed(4), s.score >= result.threshold ? 'anomalous' : 'normal']);
  const header = ['file', 'label', 'score', `at ${result.threshold}`];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] as number)).join('  ').trimEnd();
  const out = [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''];
  const good_ = result.scores.filter((s) => s.label === 'good');
  const bad_ = result.scores.filter((s) => s.label === 'bad');
  out.push(`images       ${good_.length} good, ${bad_.length} bad${result.skipped.length ? `, ${result.skipped.length} skipped` : ''}`);
  out.push(`image AUROC  ${fmt(result.auroc)}`);
  out.push(`F1           ${fmt(result.f1)} at score ≥ ${result.threshold} (good flagged: ${good_.filter((s) => s.score >= result.threshold).length}, bad missed: ${bad_.filter((s) => s.score < result.threshold).length})`);
  out.push(`pixel AUROC  ${result.pixelAuroc === null ? 'n/a (no masks)' : `${fmt(result.pixelAuroc)} (${result.maskedBadImages} masked bad images)`}`);
  for (const [type, value] of Object.entries(perDefect)) out.push(`  ${type.padEnd(20)} AUROC ${fmt(value)}`);
  out.push(`model time   ${result.inferenceMsPerImage.toFixed(1)} ms per image`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/**
 * `visq model check <folder>`: what the registry will do with a folder at start (manifest, sha256,
 * graph, one run on a generated image), and what a quality plan can use from it.
 */
async function checkCommand(folder: string, options: { json?: boolean }): Promise<void> {
  if (!(await isDirectory(folder))) throw new InvalidInputError('invalid_argument', `${folder}: not a directory`);
  let model: RegisteredModel;
  try {
    model = await loadModelFolder(folder);
  } catch (error) {
    if (error instanceof ModelLoadError) throw new InvalidInputError('invalid_argument', error.message);
    throw error;
  }
  const { manifest: m, dryRun } = model;
  const specs = measureSpecs(m);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ ok: true, folder, id: m.id, version: m.version, task: m.task, sha256: m.sha256, input: m.input, dryRun, measures: specs })}\n`);
    return;
  }
  const i = m.input;
  const resize = i.resize === 'center-crop' ? `center-crop (shorter side ${i.shorterSide})` : i.resize;
  const range = (s: MeasureSpec) => (s.max === null ? `≥ ${s.min}` : s.integer ? `${s.min} … ${s.max} (whole numbers)` : `${s.min} … ${s.max}`);
  const nameWidth = Math.max(...specs.map((s) => s.name.length));
  const rangeWidth = Math.max(...specs.map((s) => range(s).length));
  const out = [
    `${folder}: usable — ${m.id} ${m.version}, task ${m.task}`,
    `  input    "${i.name}" ${i.width}×${i.height} ${i.channels} ${i.layout}, ${resize}, ${i.interpolation} resampling, ${i.normalization ? `mean ${JSON.stringify(i.normalization.mean)} std ${JSON.stringify(i.normalization.std)}` : 'no mean/std (0..1)'}`,
    `  outputs  ${Object.entries(dryRun.outputs).map(([name, shape]) => `"${name}" [${shape.join(', ')}]`).join(', ')}`,
    `  a run on a generated mid-grey image took ${dryRun.ms.toFixed(1)} ms (first run of a session)`,
    ...dryRun.warnings.map((w) => `  warning: ${w}`),
    '',
    `measures a quality plan can use (${specs.length}):`,
    ...specs.map((s) => `  ${s.name.padEnd(nameWidth)}  ${range(s).padEnd(rangeWidth)}  ${s.meaning}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

/** `visq model …` commands (check, fit, eval). */
export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('check model folders; fit and evaluate anomaly models for the registry (Node, CPU)');
  model
    .command('check <folder>')
    .description('check a model folder as the registry will at start (manifest, sha256, graph, one run on a generated image) and list the measures a quality plan can use')
    .option('--json', 'print JSON instead of text')
    .action(checkCommand);
  model
    .command('fit')
    .description('fit an anomaly model from good images only; writes a registry folder (model.onnx + model.json) and prints a JSON summary')
    .requiredOption('--good <dir>', 'good (defect-free) training images (searched recursively)')
    .requiredOption('--out <dir>', 'the model folder to write (copy it into VISQ_MODELS_DIR)')
    .option('--id <id>', 'model id for quality plans (default: the --out folder name)')
    .option('--model-version <version>', 'model version (in model.json and every verdict that used it)', '1.0.0')
    .option('--method <method>', "pretrained: per-position Gaussians on the shipped ImageNet backbone's features (aligned parts); pca-patches: the location-free memory bank of PCA patch features; auto: pretrained unless the good images are not aligned parts", oneOf(FIT_METHODS), 'auto')
    .option('--tiling <mode>', `pretrained: auto cuts large images (short side ≥ ${AUTO_TILING_SHORT_SIDE} px) into overlapping ${TILE_SIZE}-px tiles at a ${TILED_SHORT_SIDE}-px short side; on: tiles whatever the size (small defects on smaller images); off: one view`, oneOf(['auto', 'on', 'off'] as const), 'auto')
    .option('--input-size <px>', `pretrained: the model input's short side (a multiple of ${SIDE_MULTIPLE}; default 224, 416 tiled; the long side keeps the training images' aspect ratio); pca-patches: the square input size, a multiple of 8 (default ${DEFAULT_INPUT_SIZE})`, positiveInteger)
    .option('--val-good <dir>', 'good validation images for the threshold (default: cross-validation on --good)')
    .option('--bad <dir>', 'pretrained: defective images; the threshold is placed so that at most --max-false-accept-rate of them score below it')
    .option('--max-false-accept-rate <share>', `with --bad: the share of defective images allowed below the threshold (default ${DEFAULT_MAX_FALSE_ACCEPT_RATE})`, unitInterval)
    .option('--val-bad <dir>', 'pca-patches: defective validation images; the threshold is then set at the best F1')
    .option('--force', 'replace model.onnx and model.json in a non-empty --out folder')
    .action(fitCommand);
  model
    .command('eval')
    .description('measure a model on good and bad images: image AUROC, F1 at 0.5, pixel AUROC with masks')
    .requiredOption('--model <dir>', 'the model folder (model.json + ONNX)')
    .requiredOption('--good <dir>', 'good images')
    .requiredOption('--bad <dir>', 'defective images; sub-folders per defect type allowed (MVTec layout)')
    .option('--masks <dir>', 'defect masks with the same relative names as under --bad (or <name>_mask.png)')
    .option('--threshold <score>', 'decision threshold on anomaly_score for F1', unitInterval, 0.5)
    .option('--json', 'print JSON instead of a table')
    .action(evalCommand);
}
