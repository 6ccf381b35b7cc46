import { z } from 'zod';
import { labelsSchema, taskManifestSchema, type MeasureSpec } from '../manifest-fields.js';
import { differs, labelList, outputTensor, plural, shapeText, tensorValues, type ModelTask, type TaskOutput, type TaskOutputs } from './types.js';

// ---------------------------------------------------------------------------------------------
// classification: one score per label, output [N, C] (C = labels.length; batch 0 is used).
// Measures: `prob:<label>` for every label (softmax applied first when `scoreType` is `logits`;
// used as given when `probabilities`), and `top_label` = the index in `labels` of the most probable
// label (the first one on a tie; NaN when a score is not finite). No overlay.
// ---------------------------------------------------------------------------------------------

const measures = (m: { labels: readonly string[] }): MeasureSpec[] => [
  ...m.labels.map((l) => ({ name: `prob:${l}`, min: 0, max: 1, integer: false, meaning: `probability of "${l}"` })),
  { name: 'top_label', min: 0, max: m.labels.length - 1, integer: true, meaning: 'index in labels of the most probable label' },
];

export const classificationManifestSchema = taskManifestSchema(
  'classification',
  {
    outputs: z.object({
      /** The output holding the class scores, [N, C]. */
      scores: z.string().min(1),
      /** `logits`: raw scores, visq applies softmax; `probabilities`: already sum to 1, used as they are. */
      scoreType: z.enum(['logits', 'probabilities']),
    }).strict(),
    labels: labelsSchema.min(2, 'a classifier needs at least 2 labels'),
  },
  measures,
);

export type ClassificationManifest = z.output<typeof classificationManifestSchema>;

export const classificationTask: ModelTask<ClassificationManifest> = {
  name: 'classification',
  schema: classificationManifestSchema,
  measures,
  outputNames: (m) => [m.outputs.scores],
  checkOutput(m, name, shape) {
    if (shape.length !== 2) return `output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but class scores are [N, classes] (2 dimensions)`;
    if (differs(shape[1], m.labels.length)) return `output "${name}" has shape ${shapeText(shape)}: ${plural(Number(shape[1]), 'class')} in the graph, but model.json has ${labelList(m.labels)}`;
    return null;
  },
  run: (m, outputs) => classificationMeasures(m, outputs),
};

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
  const result = new Map<string, number>(manifest.labels.map((l, i) => [`prob:${l}`, probs[i]!]));
  result.set('top_label', argmax(probs));
  return { measures: result, overlays: [] };
}
