/**
 * What the defect classifier's build and its CI check share: the build configuration, reading a
 * generated image set (the fixture generator's good/ and bad/<defect>/ layout), running the ONNX
 * model exactly as a visq worker does, and the held-out metrics of the model card.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { ClassificationManifest, ModelInput } from '../../src/inference/manifest.js';
import { toInputTensor } from '../../src/inference/preprocess.js';
import { classificationMeasures } from '../../src/inference/tasks/classification.js';
import { auroc } from '../../src/model-fit/metrics.js';

export const scriptDir = resolve(fileURLToPath(new URL('.', import.meta.url)));
export const repositoryRoot = resolve(scriptDir, '..', '..');

export interface SetConfig { seed: number; perClass: number }
export interface BuildConfig {
  id: string;
  version: string;
  part: 'machined-surface' | 'bracket';
  labels: string[];
  /** Size of the generated images (what a camera would post). */
  imageSize: number;
  /** The model's input size: images are stretched to it by the pipeline's own preprocessing. */
  inputSize: number;
  sets: { train: SetConfig; validation: SetConfig; test: SetConfig };
  training: { seed: number; epochs: number; batchSize: number; learningRate: number; weightDecay: number; threads: number };
}

export async function readConfig(): Promise<BuildConfig> {
  return JSON.parse(await readFile(join(scriptDir, 'config.json'), 'utf8')) as BuildConfig;
}

/** The exact command that generates a set (what build.sh runs). */
export function generatorCommand(config: BuildConfig, out: string, set: SetConfig): string {
  return `npx tsx tools/fixtures/generate.ts --out ${out} --part ${config.part} --good ${set.perClass} --bad ${set.perClass} ` +
    `--seed ${set.seed} --width ${config.imageSize} --height ${config.imageSize}`;
}

export interface Sample { file: string; label: number }

/** Every image of a generated set with its label index: good/ is "good", bad/<defect>/ is the defect. */
export async function listSet(dir: string, labels: readonly string[]): Promise<Sample[]> {
  const samples: Sample[] = [];
  const pngs = async (sub: string): Promise<string[]> =>
    (await readdir(join(dir, sub)).catch(() => [] as string[])).filter((f) => f.endsWith('.png')).sort().map((f) => join(dir, sub, f));
  for (const [label, name] of labels.entries()) {
    const files = await pngs(name === 'good' ? 'good' : join('bad', name));
    if (files.length === 0) throw new Error(`no images for "${name}" in ${dir}`);
    for (const file of files) samples.push({ file, label });
  }
  return samples;
}

/** No image of a generated set is anywhere near this; the pipeline's own limit is configurable. */
export const MAX_PIXELS = 50_000_000;

/** The pixels as the pipeline feeds them (resize included), before any mean/std: 8-bit NCHW. */
export async function inputBytes(file: string, input: ModelInput): Promise<Uint8Array> {
  const { data } = await toInputTensor(await readFile(file), { ...input, normalization: null }, MAX_PIXELS);
  return Uint8Array.from(data, (v) => Math.round(v * 255));
}

/** The session a visq worker thread opens: one thread, sequential, all graph optimisations. */
export function openSession(onnxPath: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(onnxPath, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
}

export interface Prediction { file: string; label: number; probs: number[]; top: number }
export interface RunResult { predictions: Prediction[]; inferenceMs: number[]; preprocessMs: number[] }

/**
 * Each image as a visq worker handles it: preprocessing by `toInputTensor` with the manifest's
 * input spec, a batch-1 run, `prob:<label>` and `top_label` by the classification task's own code.
 * Times the session run (and the preprocessing) per image.
 */
export async function runClassifier(manifest: ClassificationManifest, session: ort.InferenceSession, samples: readonly Sample[]): Promise<RunResult> {
  const result: RunResult = { predictions: [], inferenceMs: [], preprocessMs: [] };
  for (const sample of samples) {
    const bytes = await readFile(sample.file);
    const t0 = performance.now();
    const { data, dims } = await toInputTensor(bytes, manifest.input, MAX_PIXELS);
    const t1 = performance.now();
    const outputs = await session.run({ [manifest.input.name]: new ort.Tensor('float32', data, dims) });
    const t2 = performance.now();
    const { measures } = classificationMeasures(manifest, outputs);
    const probs = manifest.labels.map((l) => measures.get(`prob:${l}`)!);
    result.predictions.push({ file: sample.file, label: sample.label, probs, top: measures.get('top_label')! });
    result.preprocessMs.push(t1 - t0);
    result.inferenceMs.push(t2 - t1);
  }
  return result;
}

export interface ClassMetrics { precision: number; recall: number; f1: number; support: number }
export interface HeldOutMetrics {
  images: number;
  accuracy: number;
  macro_f1: number;
  /** Good vs any defect, scored by 1 − prob:good. */
  auroc_good_vs_defect: number;
  per_class: Record<string, ClassMetrics>;
  /** rows: true label, columns: predicted label (top_label), in `labels` order. */
  confusion_matrix: { labels: string[]; rows: number[][] };
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);

export function heldOutMetrics(labels: readonly string[], predictions: readonly Prediction[]): HeldOutMetrics {
  const n = labels.length;
  const rows = labels.map(() => new Array<number>(n).fill(0));
  for (const p of predictions) {
    if (!Number.isInteger(p.top)) throw new Error(`${p.file}: top_label is ${p.top}`);
    rows[p.label]![p.top]!++;
  }
  const perClass: Record<string, ClassMetrics> = {};
  let f1Sum = 0;
  for (const [i, label] of labels.entries()) {
    const tp = rows[i]![i]!;
    const support = rows[i]!.reduce((a, b) => a + b, 0);
    const predicted = rows.reduce((a, r) => a + r[i]!, 0);
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    const f1 = ratio(2 * precision * recall, precision + recall);
    perClass[label] = { precision, recall, f1, support };
    f1Sum += f1;
  }
  const good = labels.indexOf('good');
  const correct = rows.reduce((a, r, i) => a + r[i]!, 0);
  return {
    images: predictions.length,
    accuracy: ratio(correct, predictions.length),
    macro_f1: f1Sum / n,
    auroc_good_vs_defect: auroc(predictions.map((p) => 1 - p.probs[good]!), predictions.map((p) => p.label !== good)),
    per_class: perClass,
    confusion_matrix: { labels: [...labels], rows },
  };
}

export const round = (value: number, digits = 4): number => Number(value.toFixed(digits));

/** The same metrics with every ratio rounded, for the model card. */
export function roundedMetrics(m: HeldOutMetrics): HeldOutMetrics {
  return {
    ...m,
    accuracy: round(m.accuracy),
    macro_f1: round(m.macro_f1),
    auroc_good_vs_defect: round(m.auroc_good_vs_defect),
    per_class: Object.fromEntries(Object.entries(m.per_class).map(([k, c]) => [k, { precision: round(c.precision), recall: round(c.recall), f1: round(c.f1), support: c.support }])),
  };
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
