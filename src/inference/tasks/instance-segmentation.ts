import { z } from 'zod';
import { labelsSchema, modelInputSchema, taskManifestSchema, type MeasureSpec } from '../manifest-fields.js';
import type { InputGeometry } from '../preprocess.js';
import { boxesOverlay, checkPredictions, toSourceBox, yoloDetections, yoloOptions, type YoloCandidate } from './detection.js';
import { pixelScale } from './segmentation.js';
import { outputTensor, shapeText, tensorValues, type ModelTask, type TaskOutput, type TaskOutputs } from './types.js';

// ---------------------------------------------------------------------------------------------
// instance-segmentation: Ultralytics YOLO v8/v11 `-seg` exports. Input as detection's (letterboxed,
// OpenCV bilinear). Outputs: `predictions` [1, 4 + C + M, A] (boxes and class scores as detection's,
// then M mask coefficients) and `protos` [1, M, h, w] (mask prototypes). Detections are kept exactly
// as detection keeps them; each one's mask is Ultralytics' `process_mask(upsample=True)`: the
// coefficients times the prototypes, zero outside the box (at prototype resolution), resized to the
// input with bilinear interpolation (align_corners=False) and > 0 (sigmoid > 0.5).
// Measures per label: `count:<label>`, `max_conf:<label>`, `max_area_px:<label>` (the largest
// instance's mask) and `area_px:<label>` (the union of its instances' masks), areas in original-image
// pixels (letterbox padding not counted). Overlays: `boxes` (as detection's) and `mask` (8-bit PNG
// over the original image at input resolution: label i of C is round((i + 1) × 255 / C), 0 elsewhere).
// ---------------------------------------------------------------------------------------------

const measures = (m: { labels: readonly string[]; maxDetections: number }): MeasureSpec[] => m.labels.flatMap((l) => [
  { name: `count:${l}`, min: 0, max: m.maxDetections, integer: true, meaning: `"${l}" instances found` },
  { name: `max_conf:${l}`, min: 0, max: 1, integer: false, meaning: `highest confidence of a "${l}" (0 when none)` },
  { name: `max_area_px:${l}`, min: 0, max: null, integer: false, meaning: `largest "${l}" mask, in original-image pixels (0 when none)` },
  { name: `area_px:${l}`, min: 0, max: null, integer: false, meaning: `area covered by "${l}" masks, in original-image pixels` },
]);

export const instanceSegmentationManifestSchema = taskManifestSchema(
  'instance-segmentation',
  {
    input: modelInputSchema({ resize: 'letterbox' }),
    outputs: z.object({
      /** [1, 4 + C + M, A] (Ultralytics: `output0`). */
      predictions: z.string().min(1),
      /** [1, M, h, w] (Ultralytics: `output1`). */
      protos: z.string().min(1),
    }).strict(),
    labels: labelsSchema.min(1),
    ...yoloOptions,
  },
  measures,
  (m, ctx) => {
    if (m.input.resize === 'center-crop') {
      ctx.addIssue({ code: 'custom', path: ['input', 'resize'], message: 'masks must cover the whole image: use "letterbox" or "stretch", not "center-crop"' });
    }
  },
);

export type InstanceSegmentationManifest = z.output<typeof instanceSegmentationManifestSchema>;

export const instanceSegmentationTask: ModelTask<InstanceSegmentationManifest> = {
  name: 'instance-segmentation',
  schema: instanceSegmentationManifestSchema,
  measures,
  outputNames: (m) => [m.outputs.predictions, m.outputs.protos],
  checkOutput(m, name, shape) {
    if (name === m.outputs.protos) {
      return shape.length === 4 ? null : `output "${name}" has shape ${shapeText(shape)}, but mask prototypes are [1, coefficients, h, w]`;
    }
    // How many mask coefficients follow the classes is the prototypes' to say (checked when both are known).
    if (shape.length !== 3) return checkPredictions(name, shape, m.labels);
    const rows = shape[1];
    return typeof rows === 'number' && rows <= 4 + m.labels.length
      ? `output "${name}" has shape ${shapeText(shape)}: no rows for mask coefficients after 4 box values + ${m.labels.length} classes (a detection model's layout?)`
      : null;
  },
  run: (m, outputs, geometry) => instanceSegmentationMeasures(m, outputs, geometry),
};

/** One instance's mask at input resolution, as a list of covered pixel indices (y × width + x). */
function instanceMask(d: YoloCandidate, coefficients: Float64Array, protos: ArrayLike<number>, p: { m: number; h: number; w: number }, input: { w: number; h: number }): number[] {
  const sx = p.w / input.w;
  const sy = p.h / input.h;
  // The box at prototype resolution; outside it the mask is 0 (Ultralytics' crop_mask: c >= x1 and c < x2).
  const bx1 = d.x1 * sx;
  const bx2 = d.x2 * sx;
  const by1 = d.y1 * sy;
  const by2 = d.y2 * sy;
  const c0 = Math.max(0, Math.floor(bx1) - 1);
  const c1 = Math.min(p.w - 1, Math.ceil(bx2) + 1);
  const r0 = Math.max(0, Math.floor(by1) - 1);
  const r1 = Math.min(p.h - 1, Math.ceil(by2) + 1);
  const plane = p.h * p.w;
  const logit = (r: number, c: number): number => {
    if (!(c >= bx1 && c < bx2 && r >= by1 && r < by2)) return 0;
    let v = 0;
    for (let k = 0; k < p.m; k++) v += coefficients[k]! * protos[k * plane + r * p.w + c]!;
    return v;
  };
  const cache = new Map<number, number>();
  const at = (r: number, c: number) => {
    const key = r * p.w + c;
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = logit(r, c)));
    return v;
  };
  // Input pixels whose bilinear sources (align_corners=False) touch the box region.
  const covered: number[] = [];
  const x0 = Math.max(0, Math.floor((c0 + 0.5) / sx - 0.5) - 1);
  const x1 = Math.min(input.w - 1, Math.ceil((c1 + 0.5) / sx - 0.5) + 1);
  const y0 = Math.max(0, Math.floor((r0 + 0.5) / sy - 0.5) - 1);
  const y1 = Math.min(input.h - 1, Math.ceil((r1 + 0.5) / sy - 0.5) + 1);
  for (let y = y0; y <= y1; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const ry = Math.min(Math.floor(fy), p.h - 1);
    const ry1 = Math.min(ry + 1, p.h - 1);
    const ly = fy - ry;
    for (let x = x0; x <= x1; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5);
      const cx = Math.min(Math.floor(fx), p.w - 1);
      const cx1 = Math.min(cx + 1, p.w - 1);
      const lx = fx - cx;
      const v = (1 - ly) * ((1 - lx) * at(ry, cx) + lx * at(ry, cx1)) + ly * ((1 - lx) * at(ry1, cx) + lx * at(ry1, cx1));
      if (v > 0) covered.push(y * input.w + x);
    }
  }
  return covered;
}

export function instanceSegmentationMeasures(manifest: InstanceSegmentationManifest, outputs: TaskOutputs, geometry: InputGeometry): TaskOutput {
  const protosTensor = outputTensor(outputs, manifest.outputs.protos);
  if (protosTensor.dims.length !== 4) throw new Error(`output "${manifest.outputs.protos}" has shape ${shapeText(protosTensor.dims)}, but mask prototypes are [1, coefficients, h, w]`);
  const p = { m: Number(protosTensor.dims[1]), h: Number(protosTensor.dims[2]), w: Number(protosTensor.dims[3]) };
  const protos = tensorValues(protosTensor, manifest.outputs.protos);
  const { kept, values, anchors } = yoloDetections(manifest, outputs, manifest.outputs.predictions, p.m);
  const input = { w: geometry.inputWidth, h: geometry.inputHeight };
  const region = pixelScale(geometry, input.w, input.h);
  const inContent = (i: number) => {
    const x = i % input.w;
    const y = (i - x) / input.w;
    return x >= region.x0 && x < region.x1 && y >= region.y0 && y < region.y1;
  };
  const classes = manifest.labels.length;
  // Per input pixel, 1 + the class of the instance covering it (0: none).
  const union = new Uint16Array(input.w * input.h);
  const maxArea = new Array<number>(classes).fill(0);
  const coefficientRow = 4 + classes;
  for (const d of kept) {
    const coefficients = Float64Array.from({ length: p.m }, (_, k) => values[(coefficientRow + k) * anchors + d.anchor]!);
    const pixels = instanceMask(d, coefficients, protos, p, input).filter(inContent);
    maxArea[d.classIndex] = Math.max(maxArea[d.classIndex]!, pixels.length * region.area);
    // Where instances overlap, the better detection (kept first) keeps its label.
    for (const i of pixels) if (union[i] === 0) union[i] = d.classIndex + 1;
  }
  const areas = new Array<number>(classes).fill(0);
  const width = Math.max(0, region.x1 - region.x0);
  const height = Math.max(0, region.y1 - region.y0);
  const mask = new Uint8Array(width * height);
  for (let y = region.y0; y < region.y1; y++) {
    for (let x = region.x0; x < region.x1; x++) {
      const c = union[y * input.w + x]!;
      if (c === 0) continue;
      mask[(y - region.y0) * width + (x - region.x0)] = Math.round((c * 255) / classes);
      areas[c - 1]! += region.area;
    }
  }
  const inSource = kept.map((d) => ({ ...d, ...toSourceBox(d, geometry) }));
  const result = new Map<string, number>();
  manifest.labels.forEach((label, c) => {
    const mine = inSource.filter((d) => d.classIndex === c);
    result.set(`count:${label}`, mine.length);
    result.set(`max_conf:${label}`, mine.reduce((m, d) => Math.max(m, d.confidence), 0));
    result.set(`max_area_px:${label}`, maxArea[c]!);
    result.set(`area_px:${label}`, areas[c]!);
  });
  return {
    measures: result,
    overlays: [
      { kind: 'boxes', format: 'json', document: boxesOverlay(manifest.labels, inSource, geometry) },
      ...(width && height ? [{ kind: 'mask', format: 'png' as const, width, height, pixels: mask }] : []),
    ],
  };
}
