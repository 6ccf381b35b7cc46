import { z } from 'zod';

/**
 * The model manifest (`models/<id>/model.json`), CONTRACT.md "Model registry".
 * The input block states the exact tensor contract, because a mismatch here is the
 * most common reason exported anomaly scores differ from training (anomalib #3726).
 */
export const modelInputSchema = z.object({
  name: z.string().min(1),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
  channels: z.enum(['RGB', 'BGR', 'GRAY']).default('RGB'),
  /** `stretch` resizes to width×height; `letterbox` keeps aspect ratio and pads (YOLO). */
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

export const modelManifestSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" or "-"'),
  version: z.string().min(1),
  task: z.enum(['anomaly']),
  file: z.string().min(1).default('model.onnx'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  measures: z.array(z.string().min(1)).min(1),
  input: modelInputSchema,
  outputs: anomalyOutputsSchema,
  /** Absent when the graph already outputs normalised scores. */
  scoreNormalization: scoreNormalizationSchema.nullable().default(null),
  /** The model card: data, method, reproduction command, held-out metrics, licence. */
  card: z.object({
    description: z.string(),
    data: z.string(),
    method: z.string(),
    reproduce: z.string(),
    metrics: z.record(z.string(), z.unknown()),
    license: z.string(),
  }),
});

export type ModelManifest = z.infer<typeof modelManifestSchema>;
export type ModelInput = z.infer<typeof modelInputSchema>;
