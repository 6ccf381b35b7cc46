import { z } from 'zod';
import { labelsSchema, modelInputSchema, taskManifestSchema, type MeasureSpec } from '../manifest-fields.js';
import type { InputGeometry } from '../preprocess.js';
import { differs, labelList, outputTensor, plural, shapeText, tensorValues, type ModelTask, type TaskOutput, type TaskOutputs } from './types.js';

// ---------------------------------------------------------------------------------------------
// detection: Ultralytics YOLO v8/v11 export layout. Input (usually `images`) [1, 3, H, W] RGB 0..1,
// letterboxed with OpenCV's bilinear resize (the defaults for this task). Output [1, 4 + C, A]: per
// anchor cx, cy, w, h in input pixels, then C class scores (no objectness). visq keeps, per anchor,
// its best class when that score is above `confidenceThreshold` (strictly, as Ultralytics), then does
// class-wise NMS (a box is suppressed by a higher-scoring box of the same class with IoU above
// `iouThreshold`; 0.7 as `yolo predict`), keeps at most `maxDetections`, and maps boxes back to
// original-image pixels (undoing the letterbox, clipped to the image).
// Measures per label: `count:<label>`, `max_conf:<label>` (0 when none), `max_area_px:<label>` (box
// area in original-image pixels, 0 when none). Overlay: `boxes`, a JSON document (UTF-8):
// {"width", "height", "boxes": [{"label", "confidence", "x", "y", "w", "h"}]} in original-image
// pixels (x, y the top-left corner), highest confidence first.
// ---------------------------------------------------------------------------------------------

const measures = (m: { labels: readonly string[]; maxDetections: number }): MeasureSpec[] => m.labels.flatMap((l) => [
  { name: `count:${l}`, min: 0, max: m.maxDetections, integer: true, meaning: `"${l}" found` },
  { name: `max_conf:${l}`, min: 0, max: 1, integer: false, meaning: `highest confidence of a "${l}" (0 when none)` },
  { name: `max_area_px:${l}`, min: 0, max: null, integer: false, meaning: `largest "${l}" box, in original-image pixels (0 when none)` },
]);

/**
 * Options of every YOLO-layout task (detection and instance segmentation), defaulting to what
 * Ultralytics' `yolo predict` uses, so counts agree with what an engineer saw there.
 */
export const yoloOptions = {
  confidenceThreshold: z.number().min(0).max(1).default(0.25),
  iouThreshold: z.number().min(0).max(1).default(0.7),
  maxDetections: z.number().int().positive().default(300),
};

export const detectionManifestSchema = taskManifestSchema(
  'detection',
  {
    /** As the other tasks', but letterboxed by default: what Ultralytics exports expect. */
    input: modelInputSchema({ resize: 'letterbox' }),
    outputs: z.object({
      /** The output holding the predictions, [1, 4 + C, A] (Ultralytics: `output0`). */
      predictions: z.string().min(1),
    }).strict(),
    labels: labelsSchema.min(1),
    ...yoloOptions,
  },
  measures,
);

export type DetectionManifest = z.output<typeof detectionManifestSchema>;

/** What is wrong with a YOLO-layout predictions output [1, 4 + C + extra, A], or null. */
export function checkPredictions(name: string, shape: readonly (number | string)[], labels: readonly string[], extra = 0): string | null {
  const what = extra ? `4 box values + classes + ${extra} mask coefficients` : '4 box values + classes';
  if (shape.length !== 3) return `output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but YOLO predictions are [1, ${what}, anchors] (3 dimensions)`;
  if (differs(shape[1], 4 + labels.length + extra)) {
    return `output "${name}" has shape ${shapeText(shape)}: ${typeof shape[1] === 'number' && shape[1] > 4 + extra ? `4 box values + ${plural(shape[1] - 4 - extra, 'class')}${extra ? ` + ${extra} mask coefficients` : ''}` : `${shape[1]} rows`} in the graph, but model.json has ${labelList(labels)}`;
  }
  return null;
}

export const detectionTask: ModelTask<DetectionManifest> = {
  name: 'detection',
  schema: detectionManifestSchema,
  measures,
  outputNames: (m) => [m.outputs.predictions],
  checkOutput: (m, name, shape) => checkPredictions(name, shape, m.labels),
  run: (m, outputs, geometry) => detectionMeasures(m, outputs, geometry),
};

/** A box as corners, in whatever pixel space the caller says. */
export interface Box { x1: number; y1: number; x2: number; y2: number }

export interface Detection extends Box {
  classIndex: number;
  confidence: number;
}

/** One detection as stored in the `boxes` overlay: original-image pixels, (x, y) the top-left corner. */
export interface BoxesOverlayBox { label: string; confidence: number; x: number; y: number; w: number; h: number }
export interface BoxesOverlay { width: number; height: number; boxes: BoxesOverlayBox[] }

export function iou(a: Box, b: Box): number {
  const iw = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const ih = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return union > 0 ? inter / union : 0;
}

/** A candidate from one anchor of a YOLO output; `anchor` finds its other rows (mask coefficients). */
export interface YoloCandidate extends Detection { anchor: number }

/**
 * Ultralytics' raw output [1, 4 + C (+ extra rows), A] → one candidate per anchor: its best class
 * (the first on a tie) when that score is above `confidenceThreshold` (strictly, as Ultralytics
 * filters), corners in input pixels.
 */
export function decodeYolo(values: ArrayLike<number>, classes: number, anchors: number, confidenceThreshold: number): YoloCandidate[] {
  const out: YoloCandidate[] = [];
  for (let a = 0; a < anchors; a++) {
    let best = -1;
    let conf = -Infinity;
    for (let c = 0; c < classes; c++) {
      const s = values[(4 + c) * anchors + a]!;
      if (s > conf) { conf = s; best = c; }
    }
    if (!(conf > confidenceThreshold)) continue;
    const cx = values[a]!;
    const cy = values[anchors + a]!;
    const w = values[2 * anchors + a]!;
    const h = values[3 * anchors + a]!;
    if (![cx, cy, w, h].every(Number.isFinite)) continue;
    out.push({ x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2, classIndex: best, confidence: conf, anchor: a });
  }
  return out;
}

/**
 * Class-wise greedy NMS: highest confidence first (earlier anchor on a tie); a box is dropped when a
 * kept box of the same class overlaps it with IoU above `iouThreshold`. At most `maxDetections`.
 */
export function nonMaxSuppression<D extends Detection>(candidates: readonly D[], iouThreshold: number, maxDetections: number): D[] {
  const order = candidates.map((d, i) => ({ d, i })).sort((a, b) => b.d.confidence - a.d.confidence || a.i - b.i);
  const kept: D[] = [];
  for (const { d } of order) {
    if (kept.length >= maxDetections) break;
    if (kept.some((k) => k.classIndex === d.classIndex && iou(k, d) > iouThreshold)) continue;
    kept.push(d);
  }
  return kept;
}

/** Input-pixel corners → original-image corners: undo padding and scale, clip to the image. */
export function toSourceBox(b: Box, g: InputGeometry): Box {
  const clip = (v: number, max: number) => Math.min(max, Math.max(0, v));
  return {
    x1: clip((b.x1 - g.padX) / g.scaleX, g.sourceWidth),
    y1: clip((b.y1 - g.padY) / g.scaleY, g.sourceHeight),
    x2: clip((b.x2 - g.padX) / g.scaleX, g.sourceWidth),
    y2: clip((b.y2 - g.padY) / g.scaleY, g.sourceHeight),
  };
}

type YoloManifest = Pick<DetectionManifest, 'labels' | 'confidenceThreshold' | 'iouThreshold' | 'maxDetections'>;

/** The detections Ultralytics' `non_max_suppression` keeps, in input pixels, best first. */
export function yoloDetections(manifest: YoloManifest, outputs: TaskOutputs, name: string, extraRows = 0): { kept: YoloCandidate[]; values: ArrayLike<number>; anchors: number } {
  const t = outputTensor(outputs, name);
  const problem = checkPredictions(name, t.dims, manifest.labels, extraRows);
  if (problem) throw new Error(problem);
  const anchors = Number(t.dims[2]);
  const values = tensorValues(t, name);
  const candidates = decodeYolo(values, manifest.labels.length, anchors, manifest.confidenceThreshold);
  return { kept: nonMaxSuppression(candidates, manifest.iouThreshold, manifest.maxDetections), values, anchors };
}

const round2 = (v: number) => Math.round(v * 100) / 100;

/** The `boxes` overlay: detections in original-image pixels, best first. */
export function boxesOverlay(labels: readonly string[], kept: readonly Detection[], geometry: InputGeometry): BoxesOverlay {
  return {
    width: geometry.sourceWidth,
    height: geometry.sourceHeight,
    boxes: kept.map((d) => ({ label: labels[d.classIndex]!, confidence: d.confidence, x: round2(d.x1), y: round2(d.y1), w: round2(d.x2 - d.x1), h: round2(d.y2 - d.y1) })),
  };
}

/**
 * YOLO v8/v11 predictions → per label `count:`, `max_conf:` and `max_area_px:` (original-image
 * pixels; 0 when nothing was found), and the `boxes` overlay document.
 */
export function detectionMeasures(manifest: DetectionManifest, outputs: TaskOutputs, geometry: InputGeometry): TaskOutput {
  const kept = yoloDetections(manifest, outputs, manifest.outputs.predictions).kept.map((d) => ({ ...d, ...toSourceBox(d, geometry) }));
  const measures = new Map<string, number>();
  manifest.labels.forEach((label, c) => {
    const mine = kept.filter((d) => d.classIndex === c);
    measures.set(`count:${label}`, mine.length);
    measures.set(`max_conf:${label}`, mine.reduce((m, d) => Math.max(m, d.confidence), 0));
    measures.set(`max_area_px:${label}`, mine.reduce((m, d) => Math.max(m, (d.x2 - d.x1) * (d.y2 - d.y1)), 0));
  });
  return { measures, overlays: [{ kind: 'boxes', format: 'json', document: boxesOverlay(manifest.labels, kept, geometry) }] };
}
