/**
 * Tiny ONNX graphs in the real input/output layouts of the exporters users bring (Ultralytics YOLO,
 * classifier and segmentation exports), computed deterministically from the image so a test can post
 * an image and know what the model must find. Test fixtures only: no trained weights are claimed.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GraphBuilder, type Dimension } from '../../src/model-fit/onnx-graph.js';

export interface BuiltModel { bytes: Uint8Array; manifest: Record<string, unknown> }

const card = (description: string) => ({
  description: `${description} Test fixture built by test/support/onnx-models.ts; not a trained model.`,
  data: 'none: a hand-written graph',
  method: 'fixed weights on channel means, chosen so tests know the outputs',
  reproduce: 'test/support/onnx-models.ts',
  metrics: {},
  license: 'Apache-2.0',
});

/** Channel means (0..1) of rows rowStart..rowEnd of an NCHW input, as [N, channels]. */
function channelMeans(g: GraphBuilder, input: string, rows?: [number, number]): string {
  const region = rows
    ? g.op('Slice', [input, g.int64Tensor('starts', [rows[0]]), g.int64Tensor('ends', [rows[1]]), g.int64Tensor('axes', [2])], {}, 'region')
    : input;
  return g.op('ReduceMean', [region], { axes: { ints: [2, 3] }, keepdims: { int: 0 } }, 'means');
}

export interface YoloAnchor {
  /** cx, cy, w, h in input pixels. */
  box: [number, number, number, number];
  /** Per class, the weights of the mean r, g, b of the image region: score = w·[r, g, b]. */
  scores: [number, number, number][];
}

/**
 * An Ultralytics-layout detector: input `images` [1, 3, size, size] → `output0` [1, 4 + C, A]
 * (cx, cy, w, h in input pixels, then C class scores, no objectness). Boxes are fixed; each class
 * score is linear in the mean colour of the input rows `rows` (by default the middle quarter, which a
 * 2:1 landscape image letterboxed into a square fills).
 */
export function yoloGraph(o: { size?: number; anchors: YoloAnchor[]; classes: number; rows?: [number, number]; outputClasses?: number }): Uint8Array {
  const size = o.size ?? 64;
  const a = o.anchors.length;
  const classesInGraph = o.outputClasses ?? o.classes;
  const g = new GraphBuilder('yolo_fixture');
  const images = g.input('images', [1, 3, size, size]);
  const means = channelMeans(g, images, o.rows ?? [Math.round(size * 3 / 8), Math.round(size * 5 / 8)]);
  // W [3, C·A]: column c·A + a holds anchor a's weights for class c.
  const w = new Array<number>(3 * classesInGraph * a).fill(0);
  o.anchors.forEach((anchor, ai) => {
    for (let c = 0; c < classesInGraph; c++) {
      const weights = anchor.scores[c] ?? [0, 0, 0];
      for (let k = 0; k < 3; k++) w[k * classesInGraph * a + c * a + ai] = weights[k]!;
    }
  });
  const flat = g.op('MatMul', [means, g.floatTensor('class_weights', w, [3, classesInGraph * a])], {}, 'scores_flat');
  const scores = g.op('Reshape', [flat, g.int64Tensor('scores_shape', [1, classesInGraph, a])], {}, 'scores');
  const boxes = new Array<number>(4 * a);
  o.anchors.forEach((anchor, ai) => anchor.box.forEach((v, k) => { boxes[k * a + ai] = v; }));
  const out = g.op('Concat', [g.floatTensor('boxes', boxes, [1, 4, a]), scores], { axis: { int: 1 } }, 'predictions');
  g.output(out, 'output0', [1, 4 + classesInGraph, a]);
  return g.toBytes({ task: 'detect', imgsz: `[${size}, ${size}]` });
}

/**
 * The detector the tests use: labels scratch, dent; 64×64 letterboxed input.
 *  - a0 (16,32,16,16) scratch 0.9·r
 *  - a1 (18,32,16,16) scratch 0.8·r — IoU 0.78 with a0: suppressed by NMS
 *  - a2 (16,32,16,16) dent 0.7·g   — same place as a0, other class: kept
 *  - a3 (48,32,12,40) dent 0.3·g   — kept for g = 1, filtered (≤ 0.25) for g ≲ 0.83; taller than the
 *    letterboxed content of a 2:1 image, so it is clipped to the image.
 */
export const yoloAnchors: YoloAnchor[] = [
  { box: [16, 32, 16, 16], scores: [[0.9, 0, 0], [0, 0, 0]] },
  { box: [18, 32, 16, 16], scores: [[0.8, 0, 0], [0, 0, 0]] },
  { box: [16, 32, 16, 16], scores: [[0, 0, 0], [0, 0.7, 0]] },
  { box: [48, 32, 12, 40], scores: [[0, 0, 0], [0, 0.3, 0]] },
];
export const yoloLabels = ['scratch', 'dent'];

export function yoloModel(id = 'yolo-fixture', over: Record<string, unknown> = {}): BuiltModel {
  return {
    bytes: yoloGraph({ anchors: yoloAnchors, classes: 2 }),
    manifest: {
      id, version: '1.0.0', task: 'detection',
      measures: yoloLabels.flatMap((l) => [`count:${l}`, `max_conf:${l}`, `max_area_px:${l}`]),
      labels: yoloLabels,
      input: { name: 'images', width: 64, height: 64, layout: 'NCHW', channels: 'RGB', resize: 'letterbox', normalization: null },
      outputs: { predictions: 'output0' },
      confidenceThreshold: 0.25,
      iouThreshold: 0.45,
      card: card('Ultralytics YOLOv8-layout detector.'),
      ...over,
    },
  };
}

/**
 * A classifier: input `input` [batch, 3, size, size] → `logits` [batch, C] = W·[r, g, b] + b over the
 * whole image's mean colour; with `probabilities` a Softmax in the graph gives `probs` instead.
 */
export function classifierGraph(o: { size?: number; weights: number[][]; bias?: number[]; probabilities?: boolean; outputDims?: Dimension[] }): Uint8Array {
  const size = o.size ?? 32;
  const c = o.weights.length;
  const channels = o.weights[0]!.length;
  const g = new GraphBuilder('classifier_fixture');
  const input = g.input('input', ['batch', channels, size, size]);
  const means = channelMeans(g, input);
  const w = new Array<number>(channels * c);
  o.weights.forEach((row, j) => row.forEach((v, k) => { w[k * c + j] = v; }));
  const logits = g.op('Add', [g.op('MatMul', [means, g.floatTensor('fc_weight', w, [channels, c])]), g.floatTensor('fc_bias', o.bias ?? new Array(c).fill(0), [c])], {}, 'fc');
  if (o.probabilities) g.output(g.op('Softmax', [logits], { axis: { int: 1 } }), 'probs', o.outputDims ?? ['batch', c]);
  else g.output(logits, 'logits', o.outputDims ?? ['batch', c]);
  return g.toBytes();
}

/** Labels ok, scratch, stain; logits [0, 4·r, 4·b]. */
export const classifierLabels = ['ok', 'scratch', 'stain'];
export const classifierWeights: [number, number, number][] = [[0, 0, 0], [4, 0, 0], [0, 0, 4]];

export function classifierModel(id = 'classifier-fixture', o: { probabilities?: boolean } = {}, over: Record<string, unknown> = {}): BuiltModel {
  return {
    bytes: classifierGraph({ weights: classifierWeights, probabilities: o.probabilities }),
    manifest: {
      id, version: '1.0.0', task: 'classification',
      measures: [...classifierLabels.map((l) => `prob:${l}`), 'top_label'],
      labels: classifierLabels,
      input: { name: 'input', width: 32, height: 32, layout: 'NCHW', channels: 'RGB', resize: 'stretch', normalization: null },
      outputs: o.probabilities ? { scores: 'probs', scoreType: 'probabilities' } : { scores: 'logits', scoreType: 'logits' },
      card: card('Image classifier (timm/torchvision export layout).'),
      ...over,
    },
  };
}

/**
 * A segmentation net: input `input` [1, 3, size, size] → 2×2 average pool → 1×1 conv.
 * `scores`: `masks` [1, C, size/2, size/2] with per-pixel scores W·[r, g, b] + b.
 * `probability`: `prob` [1, 1, size/2, size/2] = sigmoid(W·[r, g, b] + b) (one row of weights).
 */
export function segmentationGraph(o: { size?: number; weights: [number, number, number][]; bias: number[]; probability?: boolean; outputDims?: Dimension[] }): Uint8Array {
  const size = o.size ?? 64;
  const c = o.weights.length;
  const g = new GraphBuilder('segmentation_fixture');
  const input = g.input('input', [1, 3, size, size]);
  const pooled = g.op('AveragePool', [input], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } }, 'pooled');
  const conv = g.op('Conv', [pooled, g.floatTensor('conv_weight', o.weights.flat(), [c, 3, 1, 1]), g.floatTensor('conv_bias', o.bias, [c])], { kernel_shape: { ints: [1, 1] } }, 'conv');
  const half = size / 2;
  if (o.probability) g.output(g.op('Sigmoid', [conv]), 'prob', o.outputDims ?? [1, c, half, half]);
  else g.output(conv, 'masks', o.outputDims ?? [1, c, half, half]);
  return g.toBytes();
}

/** Labels background, scratch, stain: background 0.5; scratch r − g − b; stain b − r − g. */
export const segmentationLabels = ['background', 'scratch', 'stain'];

export function segmentationModel(id = 'segmentation-fixture', over: Record<string, unknown> = {}): BuiltModel {
  return {
    bytes: segmentationGraph({ weights: [[0, 0, 0], [1, -1, -1], [-1, -1, 1]], bias: [0.5, 0, 0] }),
    manifest: {
      id, version: '1.0.0', task: 'segmentation',
      measures: ['area_px:scratch', 'area_px:stain'],
      labels: segmentationLabels,
      background: 'background',
      input: { name: 'input', width: 64, height: 64, layout: 'NCHW', channels: 'RGB', resize: 'stretch', normalization: null },
      outputs: { mask: 'masks', layout: 'scores' },
      card: card('Semantic segmentation (per-class scores, [N, C, H, W]).'),
      ...over,
    },
  };
}

/** A single-channel defect probability: sigmoid(10·(r − g − b) − 5), ≥ 0.5 where the pixel is red. */
export function probabilityMaskModel(id = 'mask-fixture', over: Record<string, unknown> = {}): BuiltModel {
  return {
    bytes: segmentationGraph({ weights: [[10, -10, -10]], bias: [-5], probability: true }),
    manifest: {
      id, version: '1.0.0', task: 'segmentation',
      measures: ['area_px:defect'],
      labels: ['background', 'defect'],
      input: { name: 'input', width: 64, height: 64, layout: 'NCHW', channels: 'RGB', resize: 'stretch', normalization: null },
      outputs: { mask: 'prob', layout: 'probability' },
      maskThreshold: 0.5,
      card: card('Defect probability mask ([N, 1, H, W]).'),
      ...over,
    },
  };
}

/**
 * An Ultralytics `-seg`-layout model: `images` [1, 3, size, size] → `output0` [1, 4 + C + 1, A]
 * (fixed boxes; class scores linear in the mean colour as `yoloGraph`'s; one mask coefficient per
 * anchor, fixed) and `output1` [1, 1, size/4, size/4] prototypes, all 1: an instance's mask is its
 * coefficient inside its box (at prototype resolution) and 0 outside.
 */
export function yoloSegGraph(o: { size?: number; anchors: (YoloAnchor & { coefficient: number })[]; classes: number }): Uint8Array {
  const size = o.size ?? 64;
  const a = o.anchors.length;
  const g = new GraphBuilder('yolo_seg_fixture');
  const images = g.input('images', [1, 3, size, size]);
  const means = channelMeans(g, images);
  const w = new Array<number>(3 * o.classes * a).fill(0);
  o.anchors.forEach((anchor, ai) => {
    for (let c = 0; c < o.classes; c++) for (let k = 0; k < 3; k++) w[k * o.classes * a + c * a + ai] = anchor.scores[c]?.[k] ?? 0;
  });
  const flat = g.op('MatMul', [means, g.floatTensor('class_weights', w, [3, o.classes * a])], {}, 'scores_flat');
  const scores = g.op('Reshape', [flat, g.int64Tensor('scores_shape', [1, o.classes, a])], {}, 'scores');
  const boxes = new Array<number>(4 * a);
  o.anchors.forEach((anchor, ai) => anchor.box.forEach((v, k) => { boxes[k * a + ai] = v; }));
  const coefficients = g.floatTensor('coefficients', o.anchors.map((x) => x.coefficient), [1, 1, a]);
  const out = g.op('Concat', [g.floatTensor('boxes', boxes, [1, 4, a]), scores, coefficients], { axis: { int: 1 } }, 'predictions');
  g.output(out, 'output0', [1, 4 + o.classes + 1, a]);
  // Prototypes that depend on the input only through a zero multiple, so the graph keeps its input.
  const p = size / 4;
  const zero = g.op('Mul', [g.op('ReduceMean', [images], { keepdims: { int: 0 } }, 'image_mean'), g.floatTensor('zero', [0], [])], {}, 'zero_times_mean');
  const protos = g.op('Add', [g.floatTensor('ones', new Array(p * p).fill(1), [1, 1, p, p]), zero], {}, 'protos');
  g.output(protos, 'output1', [1, 1, p, p]);
  return g.toBytes({ task: 'segment', imgsz: `[${size}, ${size}]` });
}

/**
 * The instance-segmentation model the tests use: labels scratch, dent; 64×64 letterboxed input,
 * 16×16 prototypes.
 *  - a0 box x 16..48, y 24..40, scratch 0.9·r, coefficient +1
 *  - a1 box x 18..50, y 24..40, scratch 0.8·r, coefficient +1 — IoU 0.88 with a0: suppressed
 *  - a2 box x 40..56, y 8..24,  dent 0.7·g, coefficient +1
 *  - a3 box x 4..12,  y 48..56, dent 0.6·g, coefficient −1: a detection whose mask is empty
 */
export const yoloSegAnchors: (YoloAnchor & { coefficient: number })[] = [
  { box: [32, 32, 32, 16], scores: [[0.9, 0, 0], [0, 0, 0]], coefficient: 1 },
  { box: [34, 32, 32, 16], scores: [[0.8, 0, 0], [0, 0, 0]], coefficient: 1 },
  { box: [48, 16, 16, 16], scores: [[0, 0, 0], [0, 0.7, 0]], coefficient: 1 },
  { box: [8, 52, 8, 8], scores: [[0, 0, 0], [0, 0.6, 0]], coefficient: -1 },
];

export function yoloSegModel(id = 'yolo-seg-fixture', over: Record<string, unknown> = {}): BuiltModel {
  return {
    bytes: yoloSegGraph({ anchors: yoloSegAnchors, classes: 2 }),
    manifest: {
      id, version: '1.0.0', task: 'instance-segmentation',
      labels: yoloLabels,
      input: { name: 'images', width: 64, height: 64 },
      outputs: { predictions: 'output0', protos: 'output1' },
      card: card('Ultralytics YOLOv8-seg-layout instance segmentation.'),
      ...over,
    },
  };
}

/**
 * An anomaly model whose graph does not normalise its score as its manifest claims: `pred_score` =
 * 3 × (mean of the image) − 2, below 0 for images darker than 2/3 grey.
 */
export function rawScoreAnomalyModel(id = 'raw-score-fixture'): BuiltModel {
  const g = new GraphBuilder('raw_score_fixture');
  const input = g.input('input', [1, 3, 32, 32]);
  const mean = g.op('ReduceMean', [input], { axes: { ints: [1, 2, 3] }, keepdims: { int: 0 } }, 'mean');
  const score = g.op('Sub', [g.op('Mul', [mean, g.floatTensor('three', [3], [1])]), g.floatTensor('two', [2], [1])], {}, 'score');
  g.output(score, 'pred_score', [1]);
  return {
    bytes: g.toBytes(),
    manifest: {
      id, version: '1.0.0', task: 'anomaly',
      input: { name: 'input', width: 32, height: 32 },
      outputs: { score: 'pred_score' },
      card: card('An anomaly export whose score is not normalised, though its manifest says so.'),
    },
  };
}

/** Writes a model folder (`model.onnx` + `model.json` with its sha256) and returns its path. */
export async function writeModelFolder(dir: string, model: BuiltModel): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'model.onnx'), model.bytes);
  const sha256 = createHash('sha256').update(model.bytes).digest('hex');
  await writeFile(path.join(dir, 'model.json'), JSON.stringify({ ...model.manifest, file: 'model.onnx', sha256 }, null, 2));
  return dir;
}
