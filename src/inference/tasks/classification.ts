import type { ClassificationManifest } from '../manifest.js';
import { outputTensor, shapeText, tensorValues, type TaskOutput, type TaskOutputs } from './types.js';

/** Numerically stable softmax. */
export function softmax(logits: readonly number[]): number[] {
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** Index of the highest value (the first on a tie); NaN when any value is not finite. */
export function argmax(values: readonly number[]): number {
  if (values.some((v) => !Number.isFinite(v))) return NaN;
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Class scores [N, C] (batch 0) → `prob:<label>` for every label and `top_label`, the index in
 * `labels` of the most probable one. Softmax is applied when the manifest says the scores are logits.
 */
export function classificationMeasures(manifest: ClassificationManifest, outputs: TaskOutputs): TaskOutput {
  const name = manifest.outputs.scores;
  const t = outputTensor(outputs, name);
  const n = manifest.labels.length;
  if (t.dims[t.dims.length - 1] !== n) {
    throw new Error(`output "${name}" has shape ${shapeText(t.dims)}, but model.json has ${n} labels`);
  }
  const values = tensorValues(t, name);
  const row = Array.from({ length: n }, (_, i) => Number(values[i]));
  const probs = manifest.outputs.scoreType === 'logits' ? softmax(row) : row;
  const measures = new Map<string, number>(manifest.labels.map((l, i) => [`prob:${l}`, probs[i]!]));
  measures.set('top_label', argmax(probs));
  return { measures, overlays: [] };
}
