import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { checkImage } from '../../src/inference/input-check.js';
import { modelInputSchema } from '../../src/inference/manifest-fields.js';
import { geometryFor, preparePixels } from '../../src/inference/preprocess.js';
import { decodeYolo, nonMaxSuppression } from '../../src/inference/tasks/detection.js';
import { repoRoot } from '../support/visq.js';

/**
 * visq's preprocessing against numbers computed by the tools models are made with — OpenCV,
 * Pillow/torchvision, Ultralytics' NMS — written by tools/reference-preprocessing/make.py into
 * fixtures/reference (see its README for versions and calls).
 */
const reference = (name: string) => path.join(repoRoot, 'fixtures', 'reference', name);
const index = JSON.parse(readFileSync(reference('reference.json'), 'utf8')) as { files: { file: string; geometry?: Record<string, number> }[] };
const geometryOf = (file: string) => index.files.find((f) => f.file === file)!.geometry!;
const cat = readFileSync(reference('cat.jpg'));

async function pixels(file: string): Promise<Uint8Array> {
  return sharp(readFileSync(reference(file))).removeAlpha().raw().toBuffer();
}

/** Largest and mean absolute difference between two 8-bit images of the same size. */
function difference(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { max, mean: sum / a.length };
}

const prepared = async (bytes: Buffer, input: Record<string, unknown>) => preparePixels(bytes, modelInputSchema().parse({ name: 'input', ...input }), 1e8);

describe('resizing as the model makers’ tools do', () => {
  it.each([
    ['OpenCV INTER_LINEAR, shrinking 451×300 to 256×256', cat, { width: 256, height: 256, interpolation: 'bilinear' }, 'cat-cv2-linear-256x256.png'],
    ['OpenCV INTER_LINEAR, enlarging 64×48 to 200×150', readFileSync(reference('cat-crop-64x48.png')), { width: 200, height: 150, interpolation: 'bilinear' }, 'cat-crop-cv2-linear-upscale-200x150.png'],
    ['OpenCV INTER_LINEAR, a square image to 224×224', readFileSync(path.join(repoRoot, 'fixtures/images/machined-surface/good/good_000.png')), { width: 224, height: 224, interpolation: 'bilinear' }, 'surface-cv2-linear-224x224.png'],
    ['PIL BILINEAR (antialiased), shrinking to 224×224', cat, { width: 224, height: 224, interpolation: 'bilinear-antialias' }, 'cat-pil-bilinear-224x224.png'],
    ['PIL BILINEAR, a square image to 224×224', readFileSync(path.join(repoRoot, 'fixtures/images/machined-surface/good/good_000.png')), { width: 224, height: 224, interpolation: 'bilinear-antialias' }, 'surface-pil-bilinear-224x224.png'],
    ['Ultralytics LetterBox to 640×640 (default for detection)', cat, { width: 640, height: 640, resize: 'letterbox' }, 'cat-letterbox-640.png'],
    ['Ultralytics LetterBox to 320×256 (odd padding: the extra row at the bottom)', cat, { width: 320, height: 256, resize: 'letterbox' }, 'cat-letterbox-320x256.png'],
    ['torchvision Resize(256) + CenterCrop(224) (default kernel for center-crop)', cat, { width: 224, height: 224, resize: 'center-crop' }, 'cat-torchvision-resize256-centercrop224.png'],
  ])('%s: within 1 of the tool on every value', async (_name, bytes, input, expected) => {
    const { raw } = await prepared(bytes, input);
    const d = difference(raw, await pixels(expected));
    expect(d.max).toBeLessThanOrEqual(1);
    expect(d.mean).toBeLessThan(0.05);
  });

  it('tells the kernels apart: the other tool’s result is far from each (so the tests above can fail)', async () => {
    const cv2 = await pixels('cat-cv2-linear-256x256.png');
    const { raw } = await prepared(cat, { width: 256, height: 256, interpolation: 'bilinear-antialias' });
    expect(difference(raw, cv2).mean).toBeGreaterThan(0.5);
    const lanczos = await prepared(cat, { width: 224, height: 224 });
    expect(difference(lanczos.raw, await pixels('cat-pil-bilinear-224x224.png')).max).toBeGreaterThan(5);
  });

  it('lanczos3 (sharp) stays close to PIL’s LANCZOS, although not the same filter implementation', async () => {
    const { raw } = await prepared(cat, { width: 224, height: 224, interpolation: 'lanczos3' });
    expect(difference(raw, await pixels('cat-pil-lanczos-224x224.png')).mean).toBeLessThan(1.5);
  });

  it('maps the letterbox and the center crop as the tools computed them', () => {
    const lb = geometryOf('cat-letterbox-320x256.png');
    expect(geometryFor(modelInputSchema().parse({ name: 'i', width: 320, height: 256, resize: 'letterbox' }), 451, 300)).toMatchObject({
      scaleX: lb.r, contentWidth: 320, contentHeight: 213, padX: lb.left, padY: lb.top,
    });
    const cc = geometryOf('cat-torchvision-resize256-centercrop224.png');
    expect(geometryFor(modelInputSchema().parse({ name: 'i', width: 224, height: 224, resize: 'center-crop' }), 451, 300)).toMatchObject({
      contentWidth: cc.resizedWidth, contentHeight: cc.resizedHeight, padX: -cc.cropLeft!, padY: -cc.cropTop!,
    });
  });
});

describe('EXIF orientation', () => {
  const sideways = readFileSync(reference('cat-exif6.jpg'));

  it('is applied before anything else, and recorded', async () => {
    const checked = await checkImage(sideways, { pixels: 1e8, side: 1e5, aspect: 100 });
    expect(checked).toMatchObject({ width: 451, height: 300, exifOrientation: 6 });
    expect(await checkImage(cat, { pixels: 1e8, side: 1e5, aspect: 100 })).toMatchObject({ width: 451, height: 300, exifOrientation: 1 });
    expect(await checkImage(readFileSync(reference('cat-exif6-upright.png')), { pixels: 1e8, side: 1e5, aspect: 100 })).toMatchObject({ exifOrientation: null });
  });

  it('gives a model the picture upright: what Pillow’s exif_transpose shows', async () => {
    for (const input of [{ width: 451, height: 300, interpolation: 'bilinear' }, { width: 128, height: 128 }, { width: 640, height: 640, resize: 'letterbox' }] as { width: number; height: number; interpolation?: string; resize?: string }[]) {
      const fromJpeg = await prepared(sideways, input);
      const fromUpright = await prepared(readFileSync(reference('cat-exif6-upright.png')), input);
      expect(fromJpeg.geometry).toEqual(fromUpright.geometry);
      // libvips' kernels shrink a JPEG partly while decoding it: within 1, where the others are exact.
      expect(difference(fromJpeg.raw, fromUpright.raw).max).toBeLessThanOrEqual(input.interpolation || input.resize ? 0 : 1);
    }
  });
});

describe('YOLO post-processing', () => {
  const raw = readFileSync(reference('yolo-raw-1x7x400.f32'));
  const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const expected = JSON.parse(readFileSync(reference('yolo-nms-reference.json'), 'utf8'));

  it.each([0.7, 0.45])('keeps what Ultralytics’ non_max_suppression keeps, in its order (IoU %s)', (iou) => {
    const kept = nonMaxSuppression(decodeYolo(values, 3, 400, 0.25), iou, 300);
    const want = expected[`iou_${iou}`].detections as { x1: number; y1: number; x2: number; y2: number; confidence: number; classIndex: number; anchorIndex: number }[];
    expect(kept.map((d) => [d.anchor, d.classIndex])).toEqual(want.map((d) => [d.anchorIndex, d.classIndex]));
    kept.forEach((d, i) => {
      expect(d.x1).toBeCloseTo(want[i]!.x1, 3);
      expect(d.y2).toBeCloseTo(want[i]!.y2, 3);
      expect(d.confidence).toBeCloseTo(want[i]!.confidence, 6);
    });
  });
});
