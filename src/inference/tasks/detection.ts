import type { DetectionManifest } from '../manifest.js';
import type { InputGeometry } from '../preprocess.js';
import { outputTensor, shapeText, tensorValues, type TaskOutput, type TaskOutputs } from './types.js';

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

/**
 * Ultralytics' raw output [1, 4 + C, A] → one candidate per anchor: its best class (the first on a
 * tie) when that score is above `confidenceThreshold` (strictly, as Ultralytics filters), corners in
 * input pixels.
 */
export function decodeYolo(values: ArrayLike<number>, classes: number, anchors: number, confidenceThreshold: number): Detection[] {
  const out: Detection[] = [];
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
    out.push({ x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2, classIndex: best, confidence: conf });
  }
  return out;
}

/**
 * Class-wise greedy NMS: highest confidence first (earlier anchor on a tie); a box is dropped when a
 * kept box of the same class overlaps it with IoU above `iouThreshold`. At most `maxDetections`.
 */
export function nonMaxSuppression(candidates: readonly Detection[], iouThreshold: number, maxDetections: number): Detection[] {
  const order = candidates.map((d, i) => ({ d, i })).sort((a, b) => b.d.confidence - a.d.confidence || a.i - b.i);
  const kept: Detection[] = [];
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

const round2 = (v: number) => Math.round(v * 100) / 100;

/**
 * YOLO v8/v11 predictions → per label `count:`, `max_conf:` and `max_area_px:` (original-image
 * pixels; 0 when nothing was found), and the `boxes` overlay document.
 */
export function detectionMeasures(manifest: DetectionManifest, outputs: TaskOutputs, geometry: InputGeometry): TaskOutput {
  const name = manifest.outputs.predictions;
  const t = outputTensor(outputs, name);
  const classes = manifest.labels.length;
  if (t.dims.length !== 3 || t.dims[1] !== 4 + classes) {
    throw new Error(`output "${name}" has shape ${shapeText(t.dims)}, expected [1, ${4 + classes}, anchors] (4 box values + ${classes} class scores)`);
  }
  const anchors = Number(t.dims[2]);
  const candidates = decodeYolo(tensorValues(t, name), classes, anchors, manifest.confidenceThreshold);
  const kept = nonMaxSuppression(candidates, manifest.iouThreshold, manifest.maxDetections)
    .map((d) => ({ ...d, ...toSourceBox(d, geometry) }));

  const measures = new Map<string, number>();
  manifest.labels.forEach((label, c) => {
    const mine = kept.filter((d) => d.classIndex === c);
    measures.set(`count:${label}`, mine.length);
    measures.set(`max_conf:${label}`, mine.reduce((m, d) => Math.max(m, d.confidence), 0));
    measures.set(`max_area_px:${label}`, mine.reduce((m, d) => Math.max(m, (d.x2 - d.x1) * (d.y2 - d.y1)), 0));
  });
  const document: BoxesOverlay = {
    width: geometry.sourceWidth,
    height: geometry.sourceHeight,
    boxes: kept.map((d) => ({
      label: manifest.labels[d.classIndex]!,
      confidence: d.confidence,
      x: round2(d.x1),
      y: round2(d.y1),
      w: round2(d.x2 - d.x1),
      h: round2(d.y2 - d.y1),
    })),
  };
  return { measures, overlays: [{ kind: 'boxes', format: 'json', document }] };
}
