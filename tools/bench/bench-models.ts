/**
 * Heavier models for the benchmark than the 256-px demo, built here so the bench needs nothing it
 * cannot make: a detector in the Ultralytics YOLO layout at 640 px (input `images` [N, 3, 640, 640]
 * → `output0` [N, 4 + C, 8400], three strides like YOLOv8), about 6 GFLOP per image (YOLOv8n: 8.7), with seeded
 * random weights. It is a speed fixture, not a trained model: what it finds means nothing.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GraphBuilder } from '../../src/model-fit/onnx-graph.js';

export const benchModels = ['bench-yolo-640'];

/** Deterministic normal(0, 1) numbers (Box–Muller over a 32-bit LCG). */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 1) / 4294967297; };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

function yoloLayoutGraph(size: number, classes: number): Uint8Array {
  const g = new GraphBuilder('bench_yolo');
  const normal = gaussian(640);
  const conv = (x: string, cin: number, cout: number, k: number, stride: number, hint: string, std = Math.sqrt(2 / (cin * k * k)), bias = 0) => {
    const w = g.floatTensor(`${hint}_w`, Array.from({ length: cout * cin * k * k }, () => normal() * std), [cout, cin, k, k]);
    const b = g.floatTensor(`${hint}_b`, new Array(cout).fill(bias), [cout]);
    const pad = Math.floor(k / 2);
    return g.op('Conv', [x, w, b], { kernel_shape: { ints: [k, k] }, strides: { ints: [stride, stride] }, pads: { ints: [pad, pad, pad, pad] } }, hint);
  };
  const block = (x: string, cin: number, cout: number, stride: number, hint: string) => g.op('Relu', [conv(x, cin, cout, 3, stride, hint)], {}, `${hint}_relu`);
  const images = g.input('images', ['batch', 3, size, size]);
  const c1 = block(images, 3, 32, 2, 'c1');
  const c2 = block(c1, 32, 64, 2, 'c2');
  const c3 = block(c2, 64, 64, 1, 'c3');
  const p3 = block(c3, 64, 128, 2, 'p3');
  const p4 = block(p3, 128, 256, 2, 'p4');
  const p5 = block(p4, 256, 512, 2, 'p5');
  // Per stride: box (cx, cy, w, h) squashed into the image, class scores mostly low (bias −4), as [N, 4 + C, cells].
  const head = (p: string, channels: number, hint: string) => {
    const box = g.op('Mul', [g.op('Sigmoid', [conv(p, channels, 4, 1, 1, `${hint}_box`, 0.05)]), g.scalar(`${hint}_px`, size)], {}, `${hint}_boxes`);
    const cls = g.op('Sigmoid', [conv(p, channels, classes, 1, 1, `${hint}_cls`, 0.05, -4)], {}, `${hint}_scores`);
    const both = g.op('Concat', [box, cls], { axis: { int: 1 } }, `${hint}_both`);
    return g.op('Reshape', [both, g.int64Tensor(`${hint}_shape`, [0, 4 + classes, -1])], {}, `${hint}_flat`);
  };
  const out = g.op('Concat', [head(p3, 128, 'h3'), head(p4, 256, 'h4'), head(p5, 512, 'h5')], { axis: { int: 2 } }, 'predictions');
  const cells = (size / 8) ** 2 + (size / 16) ** 2 + (size / 32) ** 2;
  g.output(out, 'output0', ['batch', 4 + classes, cells]);
  return g.toBytes({ task: 'detect', imgsz: `[${size}, ${size}]` });
}

/** Builds `id` into `<dir>/models/<id>` and returns that registry folder. */
export async function buildBenchModel(id: string, dir: string, _modelsDir: string): Promise<string> {
  const registry = path.join(dir, 'models');
  const folder = path.join(registry, id);
  await mkdir(folder, { recursive: true });
  const labels = ['defect'];
  const bytes = yoloLayoutGraph(640, labels.length);
  await writeFile(path.join(folder, 'model.onnx'), bytes);
  const manifest = {
    id, version: '1.0.0', task: 'detection', file: 'model.onnx', sha256: createHash('sha256').update(bytes).digest('hex'),
    measures: labels.flatMap((l) => [`count:${l}`, `max_conf:${l}`, `max_area_px:${l}`]),
    labels,
    input: { name: 'images', width: 640, height: 640, layout: 'NCHW', channels: 'RGB', resize: 'letterbox', normalization: null },
    outputs: { predictions: 'output0' },
    confidenceThreshold: 0.25,
    iouThreshold: 0.7,
    card: {
      description: 'Benchmark fixture in the Ultralytics YOLO layout at 640 px; seeded random weights, not a trained model.',
      data: 'none', method: 'six 3×3 convolutions (strides 2, 2, 1, 2, 2, 2), heads at strides 8, 16, 32', reproduce: 'tools/bench/bench-models.ts',
      metrics: {}, license: 'Apache-2.0',
    },
  };
  await writeFile(path.join(folder, 'model.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(path.join(dir, `plan-${id}.json`), JSON.stringify({
    partNumber: 'PN-1001',
    characteristics: [{ name: 'defects', model: id, measure: `count:${labels[0]}`, usl: 100000, severity: 'major' }],
  }));
  return registry;
}

export const benchPlanFile = (id: string, dir: string) => path.join(dir, `plan-${id}.json`);
