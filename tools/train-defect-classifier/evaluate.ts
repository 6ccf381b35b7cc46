/**
 * Measures the exported defect classifier the way visq will run it and writes the model folder:
 *   1. writes model.onnx + model.json (manifest without metrics) into <work>/model and loads it with
 *      the registry's own checks (manifest schema, sha256, graph input/output names and shapes);
 *   2. runs the validation set through onnxruntime-node with src/inference/preprocess.ts and the
 *      classification task, and checks the probabilities against PyTorch's (the export and the
 *      preprocessing agree with training);
 *   3. runs the held-out test set the same way (one thread, batch 1, as a visq worker thread) and
 *      computes accuracy, per-class precision/recall/F1, macro F1, the confusion matrix and the
 *      AUROC of good vs defect scored by 1 − prob:good, plus time per image;
 *   4. writes <out>/model.onnx and <out>/model.json with those figures in the card, and loads it again.
 *
 *   npx tsx tools/train-defect-classifier/evaluate.ts --work <dir> [--out models/defect-classifier]
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { classificationManifestSchema, type ClassificationManifest } from '../../src/inference/tasks/classification.js';
import { loadModelFolder } from '../../src/inference/model-registry.js';
import {
  generatorCommand, heldOutMetrics, listSet, median, openSession, readConfig, repositoryRoot, round, roundedMetrics, runClassifier,
} from './lib.js';

interface TrainingReport {
  labels: string[];
  input_size: number;
  normalization: { mean: number[]; std: number[] };
  architecture: string;
  parameters: number;
  optimizer: string;
  seed: number;
  best_epoch: number;
  validation: { images: number; accuracy: number; loss: number };
  history: { epoch: number; train_loss: number; val_loss: number; val_accuracy: number; seconds: number }[];
  training_seconds: number;
  threads: number;
  software: string;
  validation_files: string[];
  validation_probabilities: number[][];
}

/** Indented JSON with every array of plain values (labels, measures, a confusion-matrix row) on one line. */
function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2).replace(/\[\n\s*([^[\]{}]*?)\n\s*\]/g, (_m, items: string) => `[${items.split(/,\n\s*/).join(', ')}]`)}\n`;
}

/** ONNX vs PyTorch on the same validation pixels: anything beyond float rounding is a broken export. */
const EXPORT_TOLERANCE = 1e-3;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { work: { type: 'string' }, out: { type: 'string' } } });
  if (!values.work) throw new Error('--work <dir> is required');
  const work = resolve(values.work);
  const outDir = resolve(values.out ?? join(repositoryRoot, 'models', 'defect-classifier'));
  const log = (message: string): void => void process.stderr.write(`${message}\n`);
  const config = await readConfig();
  const training = JSON.parse(await readFile(join(work, 'training.json'), 'utf8')) as TrainingReport;
  if (JSON.stringify(training.labels) !== JSON.stringify(config.labels)) throw new Error('training.json labels differ from config.json');

  const onnx = await readFile(join(work, 'model.onnx'));
  const { train, validation, test } = config.sets;
  const perClass = (s: { perClass: number }) => `${s.perClass} per class, ${s.perClass * config.labels.length} in all`;
  const draft: ClassificationManifest = classificationManifestSchema.parse({
    id: config.id,
    version: config.version,
    task: 'classification',
    file: 'model.onnx',
    sha256: createHash('sha256').update(onnx).digest('hex'),
    input: {
      name: 'input',
      width: config.inputSize,
      height: config.inputSize,
      layout: 'NCHW',
      channels: 'RGB',
      resize: 'stretch',
      normalization: training.normalization,
    },
    outputs: { scores: 'logits', scoreType: 'logits' },
    labels: config.labels,
    card: {
      description:
        'Defect classifier for machined/turned metal faces (part PN-1001): which one of ' +
        `${config.labels.join(', ')} an image shows. prob:<label> is the softmax probability of each label; top_label is ` +
        `the index in labels of the most probable one (${config.labels.map((l, i) => `${i} ${l}`).join(', ')}). ` +
        'A quality plan limits prob:<defect> with a usl, or prob:good with an lsl. Trained on synthetic ' +
        'images with one defect each: expect to retrain on the line’s own labelled images before relying on it.',
      data:
        `Synthetic ${config.imageSize}×${config.imageSize} ${config.part} images from the visq fixture generator (tools/fixtures), ` +
        `one class per image, classes balanced. Training: ${perClass(train)} (${generatorCommand(config, 'train', train)}). ` +
        `Validation (epoch selection): ${perClass(validation)} (${generatorCommand(config, 'validation', validation)}). ` +
        `Held-out test: ${perClass(test)} (${generatorCommand(config, 'test', test)}), used only for the metrics below. ` +
        'The images live in a temporary folder during the build and are not committed. No real camera images.',
      method:
        `${training.architecture}; ${training.parameters} parameters. Input: RGB stretched from ${config.imageSize}×${config.imageSize} ` +
        `to ${config.inputSize}×${config.inputSize} by visq's own preprocessing (sharp, src/inference/preprocess.ts — the training ` +
        `tensors were made by the same code), float32 NCHW, /255 then (x − mean)/std per channel with the mean and std in ` +
        `input.normalization (of the training pixels). ${training.optimizer}; the epoch with the best validation accuracy ` +
        `(epoch ${training.best_epoch}) is kept. Seed ${training.seed} (torch.manual_seed). ${training.software}; exported with ` +
        'torch.onnx.export, output "logits" [N, 5] (visq applies the softmax).',
      reproduce: 'bash tools/train-defect-classifier/build.sh',
      metrics: {},
      license: 'Apache-2.0 (model and synthetic training data generated by this project)',
    },
  });

  // 1. The registry's own checks on the draft folder.
  const draftDir = join(work, 'model');
  await mkdir(draftDir, { recursive: true });
  await writeFile(join(draftDir, 'model.onnx'), onnx);
  await writeFile(join(draftDir, 'model.json'), `${JSON.stringify(draft, null, 2)}\n`);
  const { manifest } = await loadModelFolder(draftDir);
  if (manifest.task !== 'classification') throw new Error('not a classification manifest');

  const session = await openSession(join(draftDir, 'model.onnx'));
  try {
    // 2. The export and the preprocessing agree with training.
    const valSamples = await listSet(join(work, 'validation'), config.labels);
    const val = await runClassifier(manifest, session, valSamples);
    let maxDiff = 0;
    val.predictions.forEach((p, i) => {
      const ref = training.validation_probabilities[i]!;
      p.probs.forEach((v, c) => { maxDiff = Math.max(maxDiff, Math.abs(v - ref[c]!)); });
    });
    const valMetrics = heldOutMetrics(config.labels, val.predictions);
    log(`validation through onnxruntime-node: accuracy ${valMetrics.accuracy.toFixed(4)} (PyTorch ${training.validation.accuracy}), ` +
      `largest probability difference to PyTorch ${maxDiff.toExponential(2)}`);
    if (!(maxDiff <= EXPORT_TOLERANCE)) throw new Error(`ONNX and PyTorch probabilities differ by ${maxDiff} on the validation set`);

    // 3. The held-out test set.
    const testSamples = await listSet(join(work, 'test'), config.labels);
    const result = await runClassifier(manifest, session, testSamples);
    const metrics = roundedMetrics(heldOutMetrics(config.labels, result.predictions));
    const good = config.labels.indexOf('good');
    const defects = result.predictions.filter((p) => p.label !== good);
    const goods = result.predictions.filter((p) => p.label === good);
    // Timing: the session run alone (the first images warm it up), and the preprocessing.
    const warm = result.inferenceMs.slice(5);
    const buildStarted = Number(process.env.BUILD_STARTED_MS);

    const card = {
      evaluated_on:
        `held-out synthetic test set, seed ${test.seed}: ${test.perClass} images each of ${config.labels.join(', ')} ` +
        `(${result.predictions.length} in all), not used for training or epoch selection; run through onnxruntime-node ` +
        'with visq\'s preprocessing and classification code (what a worker computes)',
      accuracy: metrics.accuracy,
      macro_f1: metrics.macro_f1,
      auroc_good_vs_defect: metrics.auroc_good_vs_defect,
      auroc_score: '1 − prob:good (defect = any label but good)',
      per_class: metrics.per_class,
      confusion_matrix: { ...metrics.confusion_matrix, rows_are: 'true label', columns_are: 'top_label' },
      good_vs_defect_at_top_label: {
        defects_called_good: defects.filter((p) => p.top === good).length,
        defect_images: defects.length,
        good_called_defect: goods.filter((p) => p.top !== good).length,
        good_images: goods.length,
      },
      validation: {
        images: training.validation.images,
        accuracy: training.validation.accuracy,
        best_epoch: training.best_epoch,
        onnx_vs_pytorch_max_probability_difference: Number(maxDiff.toExponential(2)),
      },
      training_seconds: training.training_seconds,
      training_measured_on: `PyTorch CPU, ${training.threads} thread${training.threads === 1 ? "" : "s"}, ${cpus()[0]?.model ?? 'unknown CPU'} (shared)`,
      ...(Number.isFinite(buildStarted) ? { build_seconds: round((Date.now() - buildStarted) / 1000, 1) } : {}),
      model_bytes: onnx.length,
      parameters: training.parameters,
      inference_ms_per_image: round(median(warm), 2),
      inference_ms_mean: round(warm.reduce((a, b) => a + b, 0) / warm.length, 2),
      preprocess_ms_per_image: round(median(result.preprocessMs.slice(5)), 2),
      inference_measured_on:
        `onnxruntime-node CPU, 1 thread (intra-op 1, sequential, as a visq worker thread), batch 1, median over ${warm.length} ` +
        `test images; ${process.platform}/${process.arch}, Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'}`,
      measured_by: 'tools/train-defect-classifier/evaluate.ts (run by build.sh; fixed seeds, rerun to reproduce the figures)',
    };

    // 4. The model folder.
    const { id, version, task, file, sha256, measures, input, outputs, labels } = manifest;
    const final = { id, version, task, file, sha256, measures, input, outputs, labels, card: { ...manifest.card, metrics: card } };
    await mkdir(outDir, { recursive: true });
    await copyFile(join(draftDir, 'model.onnx'), join(outDir, 'model.onnx'));
    await writeFile(join(outDir, 'model.json'), formatJson(final));
    await loadModelFolder(outDir);
    log(`wrote ${relative(process.cwd(), outDir)}/model.onnx (${onnx.length} bytes) and model.json (sha256 ${manifest.sha256})`);
    process.stdout.write(`${JSON.stringify(card, null, 2)}\n`);
  } finally {
    await session.release();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`evaluate failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
