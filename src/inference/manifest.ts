import { z } from 'zod';

/**
 * The model manifest (`models/<id>/model.json`), CONTRACT.md "Model registry": a discriminated
 * union on `task`. Every task shares the identity, file, input and card fields; each has its own
 * `outputs` block and options, and `measures` must list exactly what the task yields (so a quality
 * plan can be checked against the registry before it is stored).
 *
 * The input block states the exact tensor contract, because a mismatch here is the
 * most common reason exported anomaly scores differ from training (anomalib #3726).
 */
export const modelInputSchema = z.object({
  name: z.string().min(1),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
  channels: z.enum(['RGB', 'BGR', 'GRAY']).default('RGB'),
  /**
   * `stretch` resizes to width×height; `letterbox` keeps the aspect ratio, centres the image and pads
   * with grey 114 exactly as Ultralytics' LetterBox does (odd padding: the extra pixel goes to the
   * bottom/right). Boxes and mask areas are mapped back to the original image either way.
   */
  resize: z.enum(['stretch', 'letterbox']).default('stretch'),
  /** Pixel values are divided by 255 first; then `(x - mean) / std` when normalization is given. */
  normalization: z
    .object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
    .nullable()
    .default(null),
});

/** Maps anomalib-style raw scores to [0, 1] with the threshold at 0.5. */
export const scoreNormalizationSchema = z.object({
  threshold: z.number(),
  min: z.number(),
  max: z.number(),
});

export const anomalyOutputsSchema = z
  .object({
    /** Image-level score output, shape [N] or [N,1]. */
    score: z.string().min(1).optional(),
    /** Pixel anomaly map output, shape [N,1,H,W] or [N,H,W]. */
    map: z.string().min(1).optional(),
  })
  .refine((o) => o.score !== undefined || o.map !== undefined, {
    message: 'an anomaly model needs an outputs.score or an outputs.map',
  });

const cardSchema = z.object({
  description: z.string(),
  data: z.string(),
  method: z.string(),
  reproduce: z.string(),
  metrics: z.record(z.string(), z.unknown()),
  license: z.string(),
});

/** Fields every task shares. */
const commonFields = {
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" or "-"'),
  version: z.string().min(1),
  file: z.string().min(1).default('model.onnx'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  measures: z.array(z.string().min(1)).min(1),
  input: modelInputSchema,
  /** The model card: data, method, reproduction command, held-out metrics, licence. */
  card: cardSchema,
};

/**
 * Class names, in the order of the model's class dimension. They become part of measure names
 * (`prob:<label>`, `count:<label>`, …), which a quality plan limits to 128 characters.
 */
const labelsSchema = z
  .array(
    z.string().min(1).max(100).regex(/^\S(.*\S)?$/, 'no leading or trailing white space').refine((l) => !/[\u0000-\u001f]/.test(l), 'no control characters'),
  )
  .superRefine((labels, ctx) => {
    const seen = new Set<string>();
    labels.forEach((l, i) => {
      if (seen.has(l)) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate label "${l}"` });
      seen.add(l);
    });
  });

/** Refuses a `measures` list that is not exactly what the task yields, naming the difference. */
function checkMeasures(m: { task: string; measures: string[] }, expected: string[], ctx: z.RefinementCtx): void {
  const given = new Set(m.measures);
  const want = new Set(expected);
  const missing = expected.filter((x) => !given.has(x));
  const extra = m.measures.filter((x) => !want.has(x));
  const dupes = m.measures.filter((x, i) => m.measures.indexOf(x) !== i);
  if (missing.length || extra.length || dupes.length) {
    const parts = [
      missing.length ? `missing ${missing.map((x) => `"${x}"`).join(', ')}` : '',
      extra.length ? `not yielded by this task: ${extra.map((x) => `"${x}"`).join(', ')}` : '',
      dupes.length ? `listed twice: ${[...new Set(dupes)].map((x) => `"${x}"`).join(', ')}` : '',
    ].filter(Boolean);
    ctx.addIssue({ code: 'custom', path: ['measures'], message: `must be exactly what a ${m.task} model with these labels yields (${expected.join(', ')}): ${parts.join('; ')}` });
  }
}

// ---------------------------------------------------------------------------------------------
// anomaly: anomalib-style exports. Measure: `anomaly_score` (0..1, the model's threshold at 0.5).
// Overlay: `anomaly_map`, 8-bit PNG at the map's resolution (0..1 normalised score × 255).
// ---------------------------------------------------------------------------------------------
export const anomalyManifestSchema = z
  .object({
    task: z.literal('anomaly'),
    ...commonFields,
    outputs: anomalyOutputsSchema,
    /** Absent when the graph already outputs normalised scores. */
    scoreNormalization: scoreNormalizationSchema.nullable().default(null),
  })
  .superRefine((m, ctx) => checkMeasures(m, taskMeasures(m), ctx));

// ---------------------------------------------------------------------------------------------
// classification: one score per label, output [N, C] (C = labels.length; batch 0 is used).
// Measures: `prob:<label>` for every label (softmax applied first when `scoreType` is `logits`;
// used as given when `probabilities`), and `top_label` = the index in `labels` of the most probable
// label (the first one on a tie; NaN when a score is not finite). No overlay.
// ---------------------------------------------------------------------------------------------
export const classificationManifestSchema = z
  .object({
    task: z.literal('classification'),
    ...commonFields,
    outputs: z.object({
      /** The output holding the class scores, [N, C]. */
      scores: z.string().min(1),
      /** `logits`: raw scores, visq applies softmax; `probabilities`: already sum to 1, used as they are. */
      scoreType: z.enum(['logits', 'probabilities']),
    }).strict(),
    labels: labelsSchema.min(2, 'a classifier needs at least 2 labels'),
  })
  .strict()
  .superRefine((m, ctx) => checkMeasures(m, taskMeasures(m), ctx));

// ---------------------------------------------------------------------------------------------
// detection: Ultralytics YOLO v8/v11 export layout. Input (usually `images`) [1, 3, H, W] RGB 0..1,
// letterboxed (`input.resize` defaults to `letterbox` for this task). Output [1, 4 + C, A]: per
// anchor cx, cy, w, h in input pixels, then C class scores (no objectness). visq keeps, per anchor, its best class when that score is above
// `confidenceThreshold` (strictly, as Ultralytics), then does class-wise NMS (a box is suppressed by a
// higher-scoring box of the same class with IoU above `iouThreshold`), keeps at most `maxDetections`,
// and maps boxes back to original-image pixels (undoing the letterbox, clipped to the image).
// Measures per label: `count:<label>`, `max_conf:<label>` (0 when none), `max_area_px:<label>` (box
// area in original-image pixels, 0 when none). Overlay: `boxes`, a JSON document (UTF-8):
// {"width", "height", "boxes": [{"label", "confidence", "x", "y", "w", "h"}]} in original-image
// pixels (x, y the top-left corner), highest confidence first.
// ---------------------------------------------------------------------------------------------
export const detectionManifestSchema = z
  .object({
    task: z.literal('detection'),
    ...commonFields,
    /** As the other tasks', but `resize` defaults to `letterbox`: what Ultralytics exports expect. */
    input: modelInputSchema.extend({ resize: z.enum(['stretch', 'letterbox']).default('letterbox') }),
    outputs: z.object({
      /** The output holding the predictions, [1, 4 + C, A] (Ultralytics: `output0`). */
      predictions: z.string().min(1),
    }).strict(),
    labels: labelsSchema.min(1),
    confidenceThreshold: z.number().min(0).max(1).default(0.25),
    iouThreshold: z.number().min(0).max(1).default(0.45),
    maxDetections: z.number().int().positive().default(300),
  })
  .strict()
  .superRefine((m, ctx) => checkMeasures(m, taskMeasures(m), ctx));

// ---------------------------------------------------------------------------------------------
// segmentation: a class per output pixel, at the output's own resolution. `outputs.layout`:
//   `scores`      [N, C, H, W] scores or logits, C = labels.length; per pixel the highest (first on a tie).
//   `probability` [N, 1, H, W] or [N, H, W] defect probability; exactly 2 labels (background and the
//                 defect); a pixel ≥ `maskThreshold` (default 0.5) is the defect.
//   `indices`     [N, H, W] or [N, 1, H, W] class indices into `labels` (integer or float tensors).
// `background` names the background label (default "background"). Measures: `area_px:<label>` for
// every other label: the label's pixel count scaled to ORIGINAL-image pixels (output pixel → input
// pixels → original pixels; letterbox padding is not counted). Overlay: `mask`, 8-bit PNG at the
// output resolution (see tasks/segmentation.ts for the encoding).
// ---------------------------------------------------------------------------------------------
export const segmentationManifestSchema = z
  .object({
    task: z.literal('segmentation'),
    ...commonFields,
    outputs: z.object({
      mask: z.string().min(1),
      layout: z.enum(['scores', 'probability', 'indices']),
    }).strict(),
    labels: labelsSchema.min(2, 'a segmentation model needs the background label and at least one other'),
    background: z.string().min(1).default('background'),
    /** Only for `outputs.layout: "probability"`; 0.5 when absent. */
    maskThreshold: z.number().optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (!m.labels.includes(m.background)) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `must include the background label "${m.background}" (set "background" to name another)` });
      return;
    }
    if (m.outputs.layout === 'probability' && m.labels.length !== 2) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `a probability mask has exactly 2 labels (background and the defect), not ${m.labels.length}` });
    }
    if (m.maskThreshold !== undefined && m.outputs.layout !== 'probability') {
      ctx.addIssue({ code: 'custom', path: ['maskThreshold'], message: `applies only to outputs.layout "probability", not "${m.outputs.layout}"` });
    }
    checkMeasures(m, taskMeasures(m), ctx);
  });

/** The manifest of any supported task: what the registry validates `model.json` with. */
export const manifestSchema = z.discriminatedUnion('task', [
  anomalyManifestSchema,
  classificationManifestSchema,
  detectionManifestSchema,
  segmentationManifestSchema,
]);

export type Manifest = z.infer<typeof manifestSchema>;
export type AnomalyManifest = z.infer<typeof anomalyManifestSchema>;
export type ClassificationManifest = z.infer<typeof classificationManifestSchema>;
export type DetectionManifest = z.infer<typeof detectionManifestSchema>;
export type SegmentationManifest = z.infer<typeof segmentationManifestSchema>;
export type ModelTask = Manifest['task'];
export type ModelInput = z.infer<typeof modelInputSchema>;

/**
 * The anomaly manifest under its names from before the union: src/model-fit fits and evaluates
 * anomaly models only, and reads `outputs.score` / `scoreNormalization` directly.
 */
export const modelManifestSchema = anomalyManifestSchema;
export type ModelManifest = AnomalyManifest;

type MeasureSource =
  | { task: 'anomaly' }
  | { task: 'classification'; labels: readonly string[] }
  | { task: 'detection'; labels: readonly string[] }
  | { task: 'segmentation'; labels: readonly string[]; background: string };

/** Exactly the measures a model of this task and these labels yields, in a stable order. */
export function taskMeasures(m: MeasureSource): string[] {
  switch (m.task) {
    case 'anomaly':
      return ['anomaly_score'];
    case 'classification':
      return [...m.labels.map((l) => `prob:${l}`), 'top_label'];
    case 'detection':
      return m.labels.flatMap((l) => [`count:${l}`, `max_conf:${l}`, `max_area_px:${l}`]);
    case 'segmentation':
      return m.labels.filter((l) => l !== m.background).map((l) => `area_px:${l}`);
  }
}
