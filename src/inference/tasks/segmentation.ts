import { z } from 'zod';
import { labelsSchema, taskManifestSchema, type MeasureSpec } from '../manifest-fields.js';
import type { InputGeometry } from '../preprocess.js';
import { differs, labelList, outputTensor, plural, shapeText, tensorValues, type ModelTask, type TaskOutput, type TaskOutputs } from './types.js';

// ---------------------------------------------------------------------------------------------
// segmentation: a class per output pixel, at the output's own resolution. `outputs.layout`:
//   `scores`      [N, C, H, W] scores or logits, C = labels.length; per pixel the highest (first on a tie).
//   `probability` [N, 1, H, W] or [N, H, W] defect probability; exactly 2 labels (background and the
//                 defect); a pixel ≥ `maskThreshold` (default 0.5) is the defect.
//   `indices`     [N, H, W] or [N, 1, H, W] class indices into `labels` (integer or float tensors).
// `background` names the background label (default "background"). Measures: `area_px:<label>` for
// every other label: the label's pixel count scaled to ORIGINAL-image pixels (output pixel → input
// pixels → original pixels; letterbox padding is not counted). Overlay: `mask`, 8-bit PNG at the
// output resolution (see `maskValues` for the encoding).
// ---------------------------------------------------------------------------------------------

const measures = (m: { labels: readonly string[]; background: string }): MeasureSpec[] => m.labels
  .filter((l) => l !== m.background)
  .map((l) => ({ name: `area_px:${l}`, min: 0, max: null, integer: false, meaning: `area of "${l}", in original-image pixels` }));

export const segmentationManifestSchema = taskManifestSchema(
  'segmentation',
  {
    outputs: z.object({
      mask: z.string().min(1),
      layout: z.enum(['scores', 'probability', 'indices']),
    }).strict(),
    labels: labelsSchema.min(2, 'a segmentation model needs the background label and at least one other'),
    background: z.string().min(1).default('background'),
    /** Only for `outputs.layout: "probability"`; 0.5 when absent. */
    maskThreshold: z.number().optional(),
  },
  measures,
  (m, ctx) => {
    if (!m.labels.includes(m.background)) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `must include the background label "${m.background}" (set "background" to name another)` });
    }
    if (m.outputs.layout === 'probability' && m.labels.length !== 2) {
      ctx.addIssue({ code: 'custom', path: ['labels'], message: `a probability mask has exactly 2 labels (background and the defect), not ${m.labels.length}` });
    }
    if (m.maskThreshold !== undefined && m.outputs.layout !== 'probability') {
      ctx.addIssue({ code: 'custom', path: ['maskThreshold'], message: `applies only to outputs.layout "probability", not "${m.outputs.layout}"` });
    }
    if (m.input.resize === 'center-crop') {
      ctx.addIssue({ code: 'custom', path: ['input', 'resize'], message: 'a mask must cover the whole image: use "stretch" or "letterbox", not "center-crop"' });
    }
  },
);

export type SegmentationManifest = z.output<typeof segmentationManifestSchema>;

export const segmentationTask: ModelTask<SegmentationManifest> = {
  name: 'segmentation',
  schema: segmentationManifestSchema,
  measures,
  outputNames: (m) => [m.outputs.mask],
  checkOutput(m, name, shape) {
    const layout = m.outputs.layout;
    if (layout === 'scores') {
      if (shape.length !== 4) return `output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but "scores" masks are [N, classes, H, W] (4 dimensions)`;
      if (differs(shape[1], m.labels.length)) return `output "${name}" has shape ${shapeText(shape)}: ${plural(Number(shape[1]), 'class')} in the graph, but model.json has ${labelList(m.labels)}`;
      return null;
    }
    if (shape.length !== 3 && shape.length !== 4) return `output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but "${layout}" masks are [N, H, W] or [N, 1, H, W]`;
    if (shape.length === 4 && differs(shape[1], 1)) {
      return `output "${name}" has shape ${shapeText(shape)}: ${plural(Number(shape[1]), 'channel')}, but a "${layout}" mask has 1 ([N, 1, H, W])${layout === 'probability' ? '; per-class scores need outputs.layout "scores"' : ''}`;
    }
    return null;
  },
  run: (m, outputs, geometry) => segmentationMeasures(m, outputs, geometry),
};

/** Per output pixel, its index into `labels`. */
export interface ClassMap { width: number; height: number; classes: Uint16Array }

/** The default for `maskThreshold` (probability masks). */
export const defaultMaskThreshold = 0.5;

/** The output's [H, W] when its shape is [N, ..., H, W] with the given ranks allowed. */
function spatial(dims: readonly number[], name: string, layout: string, ranks: number[], channels?: number): { h: number; w: number } {
  const ok = ranks.includes(dims.length) && (channels === undefined || dims.length !== 4 || dims[1] === channels);
  if (!ok) throw new Error(`output "${name}" has shape ${shapeText(dims)}, which is not a "${layout}" segmentation output`);
  return { h: Number(dims[dims.length - 2]), w: Number(dims[dims.length - 1]) };
}

/** Decodes the model's mask output (batch 0) into a class index per pixel. */
export function classMap(manifest: SegmentationManifest, outputs: TaskOutputs): ClassMap {
  const name = manifest.outputs.mask;
  const t = outputTensor(outputs, name);
  const values = tensorValues(t, name);
  const labels = manifest.labels.length;
  const background = manifest.labels.indexOf(manifest.background);
  switch (manifest.outputs.layout) {
    case 'scores': {
      const { h, w } = spatial(t.dims, name, 'scores', [4], labels);
      const plane = h * w;
      const classes = new Uint16Array(plane);
      for (let p = 0; p < plane; p++) {
        let best = 0;
        let top = values[p]!;
        for (let c = 1; c < labels; c++) {
          const v = values[c * plane + p]!;
          if (v > top || Number.isNaN(top)) { top = v; best = c; }
        }
        classes[p] = best;
      }
      return { width: w, height: h, classes };
    }
    case 'probability': {
      const { h, w } = spatial(t.dims, name, 'probability', [3, 4], 1);
      const defect = background === 0 ? 1 : 0;
      const threshold = manifest.maskThreshold ?? defaultMaskThreshold;
      const classes = new Uint16Array(h * w);
      for (let p = 0; p < h * w; p++) classes[p] = values[p]! >= threshold ? defect : background;
      return { width: w, height: h, classes };
    }
    case 'indices': {
      const { h, w } = spatial(t.dims, name, 'indices', [3, 4], 1);
      const classes = new Uint16Array(h * w);
      for (let p = 0; p < h * w; p++) {
        const k = Math.round(values[p]!);
        if (!(k >= 0 && k < labels)) throw new Error(`output "${name}" has class index ${values[p]} at pixel ${p}, but model.json has ${labels} labels`);
        classes[p] = k;
      }
      return { width: w, height: h, classes };
    }
  }
}

/**
 * Original-image pixels one output pixel stands for, and the output pixels (by their centres) that
 * lie on the image rather than on letterbox padding: columns x0..x1−1, rows y0..y1−1.
 */
export function pixelScale(g: InputGeometry, width: number, height: number): { area: number; x0: number; x1: number; y0: number; y1: number } {
  const sx = g.inputWidth / width;
  const sy = g.inputHeight / height;
  // Centre (i + 0.5)·s inside [pad, pad + content) ⇔ i in [pad/s − 0.5, (pad + content)/s − 0.5).
  const first = (pad: number, s: number) => Math.max(0, Math.ceil(pad / s - 0.5));
  const end = (pad: number, content: number, s: number, n: number) => Math.min(n, Math.ceil((pad + content) / s - 0.5));
  return {
    area: (sx * sy) / (g.scaleX * g.scaleY),
    x0: first(g.padX, sx),
    x1: end(g.padX, g.contentWidth, sx, width),
    y0: first(g.padY, sy),
    y1: end(g.padY, g.contentHeight, sy, height),
  };
}

/**
 * The `mask` overlay's encoding (8-bit grey PNG at the output resolution): background is 0; the
 * other labels, in `labels` order, are 1..K (K = labels − 1) and their pixel value is
 * round(rank × 255 / K) — with the background first this is label index × 255 / (labels − 1);
 * a two-label model's defect is 255.
 */
export function maskValues(manifest: SegmentationManifest): Uint8Array {
  const background = manifest.labels.indexOf(manifest.background);
  const k = manifest.labels.length - 1;
  const out = new Uint8Array(manifest.labels.length);
  let rank = 0;
  manifest.labels.forEach((_, i) => { out[i] = i === background ? 0 : Math.round((++rank * 255) / k); });
  return out;
}

/**
 * Per-pixel classes → `area_px:<label>` for each non-background label, in original-image pixels,
 * and the mask overlay. Letterbox padding is cropped off the overlay (and not counted), so the
 * overlay always covers exactly the original image: a viewer stretches it over the image.
 */
export function segmentationMeasures(manifest: SegmentationManifest, outputs: TaskOutputs, geometry: InputGeometry): TaskOutput {
  const map = classMap(manifest, outputs);
  const { area, x0, x1, y0, y1 } = pixelScale(geometry, map.width, map.height);
  const counts = new Array<number>(manifest.labels.length).fill(0);
  const encode = maskValues(manifest);
  const width = Math.max(0, x1 - x0);
  const height = Math.max(0, y1 - y0);
  const pixels = new Uint8Array(width * height);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const c = map.classes[y * map.width + x]!;
      pixels[(y - y0) * width + (x - x0)] = encode[c]!;
      counts[c]!++;
    }
  }
  const measures = new Map<string, number>();
  manifest.labels.forEach((label, c) => {
    if (label !== manifest.background) measures.set(`area_px:${label}`, counts[c]! * area);
  });
  return { measures, overlays: width && height ? [{ kind: 'mask', format: 'png', width, height, pixels }] : [] };
}
