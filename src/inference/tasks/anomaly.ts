import { z } from 'zod';
import { taskManifestSchema, type MeasureSpec } from '../manifest-fields.js';
import { differs, outputTensor, shapeText, tensorValues, type GrayOverlay, type ModelTask, type TaskOutput, type TaskOutputs } from './types.js';

// ---------------------------------------------------------------------------------------------
// anomaly: anomalib-style exports and `visq model fit` models. Measure: `anomaly_score` (0..1, the
// model's threshold at 0.5). Overlay: `anomaly_map`, 8-bit PNG at the map's resolution (0..1 × 255).
// ---------------------------------------------------------------------------------------------

/** Maps anomalib-style raw scores to [0, 1] with the threshold at 0.5. */
export const scoreNormalizationSchema = z.object({ threshold: z.number(), min: z.number(), max: z.number() }).strict();

const measures = (): MeasureSpec[] => [
  { name: 'anomaly_score', min: 0, max: 1, integer: false, meaning: 'how anomalous the image is; the model’s threshold is 0.5' },
];

export const anomalyManifestSchema = taskManifestSchema(
  'anomaly',
  {
    outputs: z
      .object({
        /** Image-level score output, shape [N] or [N,1]. */
        score: z.string().min(1).optional(),
        /** Pixel anomaly map output, shape [N,1,H,W] or [N,H,W]. */
        map: z.string().min(1).optional(),
      })
      .strict()
      .refine((o) => o.score !== undefined || o.map !== undefined, { message: 'an anomaly model needs an outputs.score or an outputs.map' }),
    /** Absent (null) when the graph already outputs normalised scores, as anomalib exports do. */
    scoreNormalization: scoreNormalizationSchema.nullable().default(null),
  },
  measures,
  (m, ctx) => {
    if (m.input.resize === 'center-crop') {
      ctx.addIssue({ code: 'custom', path: ['input', 'resize'], message: 'an anomaly map must cover the whole image: use "stretch" or "letterbox", not "center-crop"' });
    }
  },
);

export type AnomalyManifest = z.output<typeof anomalyManifestSchema>;

export const anomalyTask: ModelTask<AnomalyManifest> = {
  name: 'anomaly',
  schema: anomalyManifestSchema,
  measures,
  outputNames: (m) => [m.outputs.score, m.outputs.map].filter((n): n is string => n !== undefined),
  checkOutput(m, name, shape) {
    if (name === m.outputs.score) {
      const oneValue = shape.length === 1 || (shape.length === 2 && !differs(shape[1], 1));
      if (oneValue) return null;
      const what = shape.length === 2 && typeof shape[1] === 'number' ? ` — ${shape[1]} values per image look like class scores, which a "classification" model reads` : '';
      return `output "${name}" has shape ${shapeText(shape)}, but an anomaly score is one value per image ([N] or [N, 1])${what}`;
    }
    const mapShape = shape.length === 3 || (shape.length === 4 && !differs(shape[1], 1));
    return mapShape ? null : `output "${name}" has shape ${shapeText(shape)}, but an anomaly map is [N, 1, H, W] or [N, H, W]`;
  },
  run: (m, outputs) => anomalyMeasures(m, outputs),
};

/**
 * anomalib-style outputs → `anomaly_score` and the anomaly map as an overlay. Scores are normalised
 * so the model's threshold is 0.5 (anomalib's convention), by the graph itself or here from the
 * manifest's `scoreNormalization`; without a score output, the map's maximum is the score.
 */
export function anomalyMeasures(manifest: AnomalyManifest, outputs: TaskOutputs): TaskOutput {
  const n = manifest.scoreNormalization;
  const normalise = (x: number) => (n ? Math.min(1, Math.max(0, (x - n.threshold) / (n.max - n.min) + 0.5)) : x);
  const overlays: GrayOverlay[] = [];
  let mapMax = -Infinity;

  if (manifest.outputs.map) {
    const map = outputTensor(outputs, manifest.outputs.map);
    const dims = map.dims;
    const h = Number(dims[dims.length - 2]);
    const w = Number(dims[dims.length - 1]);
    const values = tensorValues(map, manifest.outputs.map);
    const pixels = new Uint8Array(w * h);
    for (let i = 0; i < w * h; i++) {
      const v = values[i]!;
      if (v > mapMax) mapMax = v;
      pixels[i] = Math.round(Math.min(1, Math.max(0, normalise(v))) * 255);
    }
    overlays.push({ kind: 'anomaly_map', format: 'png', width: w, height: h, pixels });
  }
  const rawScore = manifest.outputs.score ? Number(tensorValues(outputTensor(outputs, manifest.outputs.score), manifest.outputs.score)[0]) : mapMax;
  return { measures: new Map([['anomaly_score', normalise(rawScore)]]), overlays };
}
