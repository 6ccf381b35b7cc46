import { describe, expect, it } from 'vitest';
import { letterboxGeometry } from '../../src/inference/preprocess.js';
import { instanceSegmentationManifestSchema, instanceSegmentationMeasures } from '../../src/inference/tasks/instance-segmentation.js';
import type { BoxesOverlay } from '../../src/inference/tasks/detection.js';
import type { GrayOverlay } from '../../src/inference/tasks/types.js';
import { yoloSegAnchors, yoloSegModel } from '../support/onnx-models.js';

const manifest = instanceSegmentationManifestSchema.parse({ ...yoloSegModel().manifest, sha256: 'a'.repeat(64) });

/**
 * The outputs yoloSegGraph computes for an image of mean colour `m` (r = g = b): boxes and
 * coefficients as fixed, class scores 0.9m, 0.8m, 0.7m, 0.6m, prototypes all 1 at 16×16.
 */
function outputs(m: number) {
  const a = yoloSegAnchors.length;
  const rows = 4 + 2 + 1;
  const predictions = new Float32Array(rows * a);
  yoloSegAnchors.forEach((anchor, i) => {
    anchor.box.forEach((v, k) => { predictions[k * a + i] = v; });
    for (let c = 0; c < 2; c++) predictions[(4 + c) * a + i] = (anchor.scores[c]![0] + anchor.scores[c]![1] + anchor.scores[c]![2]) * m;
    predictions[6 * a + i] = anchor.coefficient;
  });
  return {
    output0: { dims: [1, rows, a], data: predictions, type: 'float32' },
    output1: { dims: [1, 1, 16, 16], data: new Float32Array(256).fill(1), type: 'float32' },
  };
}

/*
 * Worked by hand, as Ultralytics' process_mask(upsample=True) computes: the box x 16..48 at 1/4
 * resolution is 4..12, so prototype columns 4..11 keep their value (c ≥ x1 and c < x2) and the rest
 * are 0. Bilinear upsampling (align_corners=False) samples column (x + 0.5)/4 − 0.5: it touches
 * column 4 from x = 14 (3.125) and column 11 up to x = 49 (11.875), so the mask (> 0) covers
 * columns 14..49: 36 pixels. Rows 24..40 → 6..10 → rows 22..41: 20. Area 720.
 * The dent box x 40..56, y 8..24 → columns 38..57, rows 6..25: 400 pixels, 48 of them (x 38..49,
 * y 22..25) under the scratch, which was kept first.
 */
describe('Ultralytics -seg outputs', () => {
  it('keeps detections as detection does, and measures each instance’s mask as Ultralytics computes it', () => {
    const { measures, overlays } = instanceSegmentationMeasures(manifest, outputs(1), letterboxGeometry(64, 64, 64, 64));
    expect(Object.fromEntries(measures)).toEqual({
      'count:scratch': 1, 'max_conf:scratch': expect.closeTo(0.9, 6), 'max_area_px:scratch': 720, 'area_px:scratch': 720,
      // The second dent's coefficient is −1: it is detected, and its mask is empty.
      'count:dent': 2, 'max_conf:dent': expect.closeTo(0.7, 6), 'max_area_px:dent': 400, 'area_px:dent': 400 - 48,
    });
    const boxes = (overlays.find((o) => o.kind === 'boxes') as { document: BoxesOverlay }).document;
    expect(boxes.boxes.map((b) => [b.label, b.x, b.y, b.w, b.h])).toEqual([['scratch', 16, 24, 32, 16], ['dent', 40, 8, 16, 16], ['dent', 4, 48, 8, 8]]);
    const mask = overlays.find((o) => o.kind === 'mask') as GrayOverlay;
    expect([mask.width, mask.height]).toEqual([64, 64]);
    const at = (x: number, y: number) => mask.pixels[y * 64 + x];
    expect([at(14, 22), at(49, 41), at(13, 30), at(50, 30), at(30, 21), at(30, 42)]).toEqual([128, 128, 0, 0, 0, 0]);
    expect([at(50, 10), at(57, 6), at(58, 10), at(45, 23)]).toEqual([255, 255, 0, 128]);
  });

  it('counts original-image pixels and leaves letterbox padding out', () => {
    // A 128×64 image letterboxed into 64×64: scale 0.5, 16 rows of padding above and below.
    const { measures, overlays } = instanceSegmentationMeasures(manifest, outputs(0.72), letterboxGeometry(128, 64, 64, 64));
    // Scratch rows 22..41 all lie in the content (16..47): 720 input pixels × 4 original pixels each.
    expect(measures.get('area_px:scratch')).toBe(720 * 4);
    // Dent rows 6..25: only 16..25 are image; 10 rows × 20, less the 48 under the scratch.
    expect(measures.get('max_area_px:dent')).toBe(200 * 4);
    expect(measures.get('area_px:dent')).toBe((200 - 48) * 4);
    const mask = overlays.find((o) => o.kind === 'mask') as GrayOverlay;
    expect([mask.width, mask.height]).toEqual([64, 32]);
  });

  it('refuses predictions without mask coefficients (a detection export)', () => {
    const o = outputs(1);
    const detectionOnly = { ...o, output0: { dims: [1, 6, 4], data: o.output0.data.slice(0, 24), type: 'float32' } };
    expect(() => instanceSegmentationMeasures(manifest, detectionOnly, letterboxGeometry(64, 64, 64, 64))).toThrow(/output "output0" has shape \[1, 6, 4\]/);
  });
});
