import { z } from 'zod';
import { listFew } from '../text.js';

/**
 * The parts of a model manifest (`models/<id>/model.json`, CONTRACT.md "Model registry") that every
 * task shares. Each task (tasks/<task>.ts) adds its outputs and options; tasks/index.ts dispatches.
 *
 * The input block states the exact tensor contract, because a mismatch here is the most common
 * reason exported scores differ from the maker's tool (anomalib #3726).
 */

/** Resize modes, each as the tool it comes from does it. */
export const resizeModes = ['stretch', 'letterbox', 'center-crop'] as const;
/**
 * Resampling kernels. `bilinear` is OpenCV's `INTER_LINEAR` (what Ultralytics' LetterBox uses: no
 * antialiasing when shrinking); `bilinear-antialias` is PIL's `BILINEAR` (what torchvision's `Resize`
 * does on images); the rest are libvips' kernels through sharp, antialiased.
 */
export const interpolations = ['bilinear', 'bilinear-antialias', 'nearest', 'cubic', 'mitchell', 'lanczos3'] as const;
export type Interpolation = (typeof interpolations)[number];

/** Each resize mode's kernel unless the manifest names one: that of the tool the mode comes from. */
export const defaultInterpolation: Record<(typeof resizeModes)[number], Interpolation> = {
  // Ultralytics' LetterBox: cv2.resize(INTER_LINEAR).
  letterbox: 'bilinear',
  // torchvision's Resize + CenterCrop on PIL images: PIL BILINEAR.
  'center-crop': 'bilinear-antialias',
  // visq's own models have always been fitted on sharp's default kernel.
  stretch: 'lanczos3',
};

export function modelInputSchema(defaults: { resize: (typeof resizeModes)[number] } = { resize: 'stretch' }) {
  return z
    .object({
      name: z.string().min(1),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
      /**
       * RGB, BGR and GRAY convert any image; RGBA takes an image's four channels in order (RGB and
       * alpha, or a fourth band such as near infrared) and refuses an image with three.
       */
      channels: z.enum(['RGB', 'BGR', 'GRAY', 'RGBA']).default('RGB'),
      /**
       * `stretch` resizes to width×height; `letterbox` keeps the aspect ratio and pads with grey 114
       * exactly as Ultralytics' LetterBox does; `center-crop` resizes the shorter side to
       * `shorterSide` and crops the middle width×height, as torchvision's Resize + CenterCrop.
       */
      resize: z.enum(resizeModes).default(defaults.resize),
      interpolation: z.enum(interpolations).optional(),
      /** For `center-crop`: the shorter side before cropping (default: the longer input side / 0.875, as ImageNet's 256 → 224). */
      shorterSide: z.number().int().positive().optional(),
      /** Pixel values are divided by 255 first; then `(x - mean) / std` when normalization is given. */
      normalization: z
        .object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
        .strict()
        .nullable()
        .default(null),
    })
    .strict()
    .superRefine((i, ctx) => {
      if (i.shorterSide !== undefined) {
        if (i.resize !== 'center-crop') ctx.addIssue({ code: 'custom', path: ['shorterSide'], message: `applies only to resize "center-crop", not "${i.resize}"` });
        else if (i.shorterSide < Math.max(i.width, i.height)) {
          ctx.addIssue({ code: 'custom', path: ['shorterSide'], message: `${i.shorterSide} is smaller than the ${Math.max(i.width, i.height)}-pixel crop: it must be at least the larger of width and height` });
        }
      }
    })
    // Defaults filled in so that a manifest written back from its parsed form parses to the same.
    .transform((i) => ({
      ...i,
      interpolation: i.interpolation ?? defaultInterpolation[i.resize],
      ...(i.resize === 'center-crop' ? { shorterSide: i.shorterSide ?? Math.round(Math.max(i.width, i.height) / 0.875) } : {}),
    }));
}

export type ModelInput = z.output<ReturnType<typeof modelInputSchema>>;

const cardSchema = z
  .object({
    description: z.string(),
    data: z.string(),
    method: z.string(),
    reproduce: z.string(),
    metrics: z.record(z.string(), z.unknown()),
    license: z.string(),
  })
  .strict();

/** Fields every task shares. `measures` may be omitted: it is then derived from the task and its labels. */
export const commonFields = {
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lower-case letters, digits, ".", "_" or "-"'),
  version: z.string().min(1),
  file: z.string().min(1).default('model.onnx'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  measures: z.array(z.string().min(1)).min(1).optional(),
  input: modelInputSchema(),
  /** The model card: data, method, reproduction command, held-out metrics, licence. */
  card: cardSchema,
};

/**
 * Class names, in the order of the model's class dimension. They become part of measure names
 * (`prob:<label>`, `count:<label>`, …), which a quality plan limits to 128 characters, so they must
 * be unique (ImageNet's own list has "crane" and "maillot" twice).
 */
export const labelsSchema = z
  .array(
    z.string().min(1).max(100).regex(/^\S(.*\S)?$/, 'no leading or trailing white space').refine((l) => !/[\u0000-\u001f]/.test(l), 'no control characters'),
  )
  .superRefine((labels, ctx) => {
    const first = new Map<string, number>();
    labels.forEach((l, i) => {
      const earlier = first.get(l);
      if (earlier === undefined) first.set(l, i);
      else ctx.addIssue({ code: 'custom', path: [i], message: `"${l}" is also label ${earlier}: measure names must be unique, so rename one of them (e.g. "${l} (${earlier})" and "${l} (${i})")` });
    });
  });

/** A measure a model yields and the values it promises: a value outside them is a model problem, not a part's. */
export interface MeasureSpec {
  name: string;
  min: number;
  /** null: no upper bound. */
  max: number | null;
  integer: boolean;
  meaning: string;
}

type TaskShape<T extends string, S extends z.ZodRawShape> = { task: z.ZodLiteral<T> } & Omit<typeof commonFields, keyof S> & S;
type TaskFields<T extends string, S extends z.ZodRawShape> = z.output<z.ZodObject<{ -readonly [P in keyof TaskShape<T, S>]: TaskShape<T, S>[P] }>>;

/**
 * A task's whole manifest: the common fields (which `shape` may override, as detection's input
 * defaults), strict (an unknown key is an error), the task's own checks, and `measures` checked
 * when given and derived from the task when not.
 */
export function taskManifestSchema<T extends string, S extends z.ZodRawShape>(
  task: T,
  shape: S,
  measures: (m: TaskFields<T, S>) => MeasureSpec[],
  check: (m: TaskFields<T, S>, ctx: z.RefinementCtx) => void = () => {},
) {
  return z
    .object({ task: z.literal(task), ...commonFields, ...shape } as TaskShape<T, S>)
    .strict()
    .superRefine((m, ctx) => {
      check(m, ctx);
      checkMeasures((m as { measures?: string[] }).measures, measures(m), task, ctx);
    })
    .transform((m) => ({ ...m, measures: (m as { measures?: string[] }).measures ?? measures(m).map((spec) => spec.name) }));
}

/** Refuses a given `measures` list that is not exactly what the task yields, leading with what is wrong. */
function checkMeasures(given: string[] | undefined, expected: readonly MeasureSpec[], task: string, ctx: z.RefinementCtx): void {
  if (given === undefined) return;
  const names = expected.map((m) => m.name);
  const want = new Set(names);
  const have = new Set(given);
  const missing = names.filter((x) => !have.has(x));
  const extra = given.filter((x) => !want.has(x));
  const dupes = [...new Set(given.filter((x, i) => given.indexOf(x) !== i))];
  if (missing.length || extra.length || dupes.length) {
    const parts = [
      missing.length ? `missing ${listFew(missing)}` : '',
      extra.length ? `not yielded by a ${task} model: ${listFew(extra)}` : '',
      dupes.length ? `listed twice: ${listFew(dupes)}` : '',
    ].filter(Boolean);
    ctx.addIssue({ code: 'custom', path: ['measures'], message: `${parts.join('; ')} (a ${task} model with these labels yields ${listFew(names, 6)}; leave "measures" out and visq derives it from the task and labels)` });
  }
}
