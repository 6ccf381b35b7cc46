import { describe, expect, it } from 'vitest';
import { detectionManifestSchema, type DetectionManifest } from '../../src/inference/tasks/detection.js';
import { letterboxGeometry, stretchGeometry } from '../../src/inference/preprocess.js';
import { decodeYolo, detectionMeasures, iou, nonMaxSuppression, toSourceBox, type BoxesOverlay, type Detection } from '../../src/inference/tasks/detection.js';

const labels = ['scratch', 'dent'];

function manifest(over: Record<string, unknown> = {}): DetectionManifest {
  return detectionManifestSchema.parse({
    id: 'det', version: '1', task: 'detection', sha256: 'a'.repeat(64),
    measures: labels.flatMap((l) => [`count:${l}`, `max_conf:${l}`, `max_area_px:${l}`]),
    labels,
    input: { name: 'images', width: 64, height: 64, resize: 'letterbox' },
    outputs: { predictions: 'output0' },
    card: { description: '', data: '', method: '', reproduce: '', metrics: {}, license: '' },
    ...over,
  });
}

/** Ultralytics layout [1, 4 + C, A] from per-anchor [cx, cy, w, h, ...scores]. */
function yolo(anchors: number[][]): { output0: { dims: number[]; data: Float32Array; type: string } } {
  const rows = anchors[0]!.length;
  const a = anchors.length;
  const data = new Float32Array(rows * a);
  anchors.forEach((anchor, i) => anchor.forEach((v, r) => { data[r * a + i] = v; }));
  return { output0: { dims: [1, rows, a], data, type: 'float32' } };
}

const det = (x1: number, y1: number, x2: number, y2: number, classIndex: number, confidence: number): Detection => ({ x1, y1, x2, y2, classIndex, confidence });

describe('decoding YOLO v8/v11 predictions', () => {
  it('takes each anchor’s best class and keeps scores strictly above the confidence threshold', () => {
    const out = yolo([
      [10, 10, 4, 4, 0.9, 0.1],
      [20, 20, 4, 4, 0.2, 0.6],
      [30, 30, 4, 4, 0.25, 0.1], // exactly at the threshold: dropped, as Ultralytics does
      [40, 40, 4, 4, 0.1, 0.24],
    ]);
    const found = decodeYolo(out.output0.data, 2, 4, 0.25);
    expect(found.map((d) => [d.x1, d.y1, d.x2, d.y2, d.classIndex, Math.round(d.confidence * 100) / 100])).toEqual([
      [8, 8, 12, 12, 0, 0.9],
      [18, 18, 22, 22, 1, 0.6],
    ]);
  });
});

describe('class-wise NMS', () => {
  it('suppresses an overlapping box of the same class, never one of another class', () => {
    const kept = nonMaxSuppression([
      det(0, 0, 10, 10, 0, 0.8),
      det(1, 0, 11, 10, 0, 0.9), // IoU 0.82 with the first: the first goes
      det(0, 0, 10, 10, 1, 0.7), // same place, other class: kept
      det(20, 20, 30, 30, 0, 0.5), // same class, no overlap: kept
    ], 0.45, 300);
    expect(kept.map((d) => [d.classIndex, d.confidence])).toEqual([[0, 0.9], [1, 0.7], [0, 0.5]]);
  });

  it('keeps boxes whose IoU is at or below the threshold, and at most maxDetections', () => {
    const a = det(0, 0, 10, 10, 0, 0.9);
    const b = det(5, 0, 15, 10, 0, 0.8); // IoU 50/150 = 1/3
    expect(iou(a, b)).toBeCloseTo(1 / 3, 12);
    expect(nonMaxSuppression([a, b], 0.45, 300)).toHaveLength(2);
    expect(nonMaxSuppression([a, b], 0.3, 300)).toHaveLength(1);
    expect(nonMaxSuppression([a, b], 0.45, 1)).toEqual([a]);
  });
});

describe('mapping boxes back to the original image', () => {
  it('undoes Ultralytics’ letterbox: 128×64 into 64×64 is scale 0.5 with 16 px bars above and below', () => {
    const g = letterboxGeometry(128, 64, 64, 64);
    expect(g).toMatchObject({ scaleX: 0.5, scaleY: 0.5, padX: 0, padY: 16, contentWidth: 64, contentHeight: 32 });
    expect(toSourceBox({ x1: 8, y1: 24, x2: 24, y2: 40 }, g)).toEqual({ x1: 16, y1: 16, x2: 48, y2: 48 });
  });

  it('undoes a portrait letterbox (Ultralytics’ bus.jpg: 810×1080 into 640×640, 80 px bars left and right)', () => {
    const g = letterboxGeometry(810, 1080, 640, 640);
    expect(g).toMatchObject({ padX: 80, padY: 0, contentWidth: 480, contentHeight: 640 });
    const b = toSourceBox({ x1: 80, y1: 0, x2: 560, y2: 640 }, g);
    expect(b.x1).toBeCloseTo(0, 9);
    expect(b.x2).toBeCloseTo(810, 9);
    expect(b.y2).toBeCloseTo(1080, 9);
  });

  it('clips boxes to the image (a box reaching into the padding)', () => {
    const g = letterboxGeometry(128, 64, 64, 64);
    expect(toSourceBox({ x1: 42, y1: 12, x2: 54, y2: 52 }, g)).toEqual({ x1: 84, y1: 0, x2: 108, y2: 64 });
    expect(toSourceBox({ x1: -10, y1: 0, x2: 100, y2: 70 }, stretchGeometry(32, 32, 64, 64))).toEqual({ x1: 0, y1: 0, x2: 32, y2: 32 });
  });

  it('undoes a stretch with separate x and y scales', () => {
    expect(toSourceBox({ x1: 32, y1: 32, x2: 64, y2: 48 }, stretchGeometry(640, 128, 64, 64))).toEqual({ x1: 320, y1: 64, x2: 640, y2: 96 });
  });
});

describe('detection measures', () => {
  const out = yolo([
    [16, 32, 16, 16, 0.9, 0], // scratch, 32×32 original px = 1024
    [18, 32, 16, 16, 0.8, 0], // scratch, suppressed by the first
    [16, 32, 16, 16, 0, 0.7], // dent at the same place: kept
    [48, 32, 12, 40, 0, 0.3], // dent, clipped to the image: 24×64 = 1536
    [48, 8, 8, 8, 0, 0.2], // dent under the threshold
  ]);
  const geometry = letterboxGeometry(128, 64, 64, 64);

  it('counts, keeps the best confidence and the largest area (original pixels) per label', () => {
    const { measures } = detectionMeasures(manifest(), out, geometry);
    expect(Object.fromEntries(measures)).toEqual({
      'count:scratch': 1, 'max_conf:scratch': expect.closeTo(0.9, 6),
      'max_area_px:scratch': 1024,
      'count:dent': 2, 'max_conf:dent': expect.closeTo(0.7, 6),
      'max_area_px:dent': 1536,
    });
  });

  it('yields 0 for labels with nothing found', () => {
    const { measures } = detectionMeasures(manifest({ confidenceThreshold: 0.95 }), out, geometry);
    expect(Object.fromEntries(measures)).toEqual({ 'count:scratch': 0, 'max_conf:scratch': 0, 'max_area_px:scratch': 0, 'count:dent': 0, 'max_conf:dent': 0, 'max_area_px:dent': 0 });
  });

  it('follows the manifest’s thresholds (defaults 0.25 and 0.7, as `yolo predict`)', () => {
    const m = manifest();
    expect([m.confidenceThreshold, m.iouThreshold, m.maxDetections]).toEqual([0.25, 0.7, 300]);
    expect(detectionMeasures(manifest({ iouThreshold: 0.9 }), out, geometry).measures.get('count:scratch')).toBe(2);
    expect(detectionMeasures(manifest({ confidenceThreshold: 0.1 }), out, geometry).measures.get('count:dent')).toBe(3);
  });

  it('stores the kept boxes as a JSON overlay in original-image pixels, best first', () => {
    const { overlays } = detectionMeasures(manifest(), out, geometry);
    expect(overlays).toHaveLength(1);
    const o = overlays[0]!;
    expect(o).toMatchObject({ kind: 'boxes', format: 'json' });
    const doc = (o as { document: BoxesOverlay }).document;
    expect(doc.width).toBe(128);
    expect(doc.height).toBe(64);
    expect(doc.boxes.map((b) => ({ ...b, confidence: Math.round(b.confidence * 100) / 100 }))).toEqual([
      { label: 'scratch', confidence: 0.9, x: 16, y: 16, w: 32, h: 32 },
      { label: 'dent', confidence: 0.7, x: 16, y: 16, w: 32, h: 32 },
      { label: 'dent', confidence: 0.3, x: 84, y: 0, w: 24, h: 64 },
    ]);
  });

  it('throws for an output that is not [1, 4 + classes, anchors]', () => {
    const wrong = { output0: { dims: [1, 7, 2], data: new Float32Array(14), type: 'float32' } };
    expect(() => detectionMeasures(manifest(), wrong, geometry)).toThrow(/output "output0" has shape \[1, 7, 2\]: 4 box values \+ 3 classes in the graph, but model.json has 2 labels \("scratch", "dent"\)/);
  });
});

describe('the detection manifest', () => {
  it('letterboxes by default, as Ultralytics exports expect', () => {
    expect(manifest({ input: { name: 'images', width: 640, height: 640 } }).input.resize).toBe('letterbox');
    expect(manifest({ input: { name: 'images', width: 640, height: 640, resize: 'stretch' } }).input.resize).toBe('stretch');
  });
});
