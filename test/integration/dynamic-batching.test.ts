import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilesystemImageStore } from '../../src/images/image-store.js';
import { loadRegistry } from '../../src/inference/model-registry.js';
import { writeModelFolder, yoloModel } from '../support/onnx-models.js';
import { fixture, repoRoot } from '../support/visq.js';

/**
 * Dynamic batching runs several inspections' images through a model in one call; a part's result
 * must be exactly what it is when each image runs alone, whatever else is in its batch. On the
 * shipped anomaly model and classifier (open batch dimension) and a detector exported with batch 1.
 */
// The compiled pool (npm test builds first): its threads load dist/inference/inference-thread.js.
const { InferencePool } = (await import(path.join(repoRoot, 'dist', 'inference', 'inference-pool.js'))) as typeof import('../../src/inference/inference-pool.js');

let dir: string;
let registry: Awaited<ReturnType<typeof loadRegistry>>;
let images: { sha256: string; width: number; height: number }[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'visq-batching-'));
  const models = path.join(dir, 'models');
  for (const id of ['surface-anomaly', 'defect-classifier']) await cp(path.join(repoRoot, 'models', id), path.join(models, id), { recursive: true });
  await writeModelFolder(path.join(models, 'yolo-fixture'), yoloModel());
  registry = await loadRegistry(models);
  const store = new FilesystemImageStore(path.join(dir, 'images'));
  // Five good parts, then five with defects.
  const folder = async (...p: string[]) => (await readdir(fixture('images', 'machined-surface', ...p))).filter((f) => f.endsWith('.png')).sort().map((f) => fixture('images', 'machined-surface', ...p, f));
  const bad = (await Promise.all(['scratch', 'crack', 'pit'].map((d) => folder('bad', d)))).flat();
  const files = [...(await folder('good')).slice(0, 5), ...bad.slice(0, 5)];
  images = await Promise.all(files.map(async (f) => ({ sha256: await store.put(await readFile(f)), width: 256, height: 256 })));
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every task at once through a pool; the results in task order. */
async function runAll(batching: { maxBatch: number; maxDelayMs: number }, tasks: { images: typeof images; models: string[] }[]) {
  const pool = new InferencePool(registry, path.join(dir, 'images'), path.join(dir, 'prepared'), 50_000_000, 1, batching);
  try {
    await pool.warmUp();
    return await Promise.all(tasks.map((t) => pool.run(t)));
  } finally {
    await pool.close();
  }
}

describe('dynamic batching', () => {
  it('gives every part the measures and overlays it gets alone, and runs batchable models on several images per call', async () => {
    const models = ['surface-anomaly', 'defect-classifier', 'yolo-fixture'];
    // Single images and a two-view part, mixed.
    const tasks = [...images.map((img) => ({ images: [img], models })), { images: [images[1]!, images[7]!], models }];
    const alone = await runAll({ maxBatch: 1, maxDelayMs: 0 }, tasks);
    const batched = await runAll({ maxBatch: 8, maxDelayMs: 50 }, tasks);
    expect(alone.every((r) => r.ok && r.runImages === 1)).toBe(true);
    expect(Math.max(...batched.map((r) => (r.ok ? r.runImages : 0)))).toBe(8);
    for (const [i, r] of batched.entries()) {
      const a = alone[i]!;
      if (!r.ok || !a.ok) throw new Error(`part ${i} failed`);
      expect(r.problems).toEqual(a.problems);
      expect(r.overlays.map((o) => [o.view, o.model, o.kind])).toEqual(a.overlays.map((o) => [o.view, o.model, o.kind]));
      for (const [view, measures] of r.views.entries()) {
        // Bit for bit: the classifier and the detector (exported with batch 1, so it runs alone).
        expect(measures['defect-classifier']).toEqual(a.views[view]!['defect-classifier']);
        expect(measures['yolo-fixture']).toEqual(a.views[view]!['yolo-fixture']);
        // onnxruntime's CPU kernels can round the fitted anomaly graph's rows differently in a batch
        // (measured: a few 1e-8, see README "Benchmark"); never more than this.
        expect(Math.abs(measures['surface-anomaly']!.anomaly_score! - a.views[view]!['surface-anomaly']!.anomaly_score!)).toBeLessThan(1e-6);
      }
    }
    // The scratches and cracks are found either way (the results are real, not empty).
    expect(batched.slice(5, 10).every((r) => r.ok && r.views[0]!['surface-anomaly']!.anomaly_score! > 0.5)).toBe(true);
  }, 120_000);

  it('an unusable image fails its own part only', async () => {
    const store = new FilesystemImageStore(path.join(dir, 'images'));
    const broken = { sha256: await store.put(Buffer.from('not an image at all')), width: 256, height: 256 };
    const results = await runAll({ maxBatch: 8, maxDelayMs: 50 }, [
      { images: [images[0]!], models: ['surface-anomaly'] },
      { images: [broken], models: ['surface-anomaly'] },
      { images: [images[6]!], models: ['surface-anomaly'] },
    ]);
    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    expect(results[1]).toMatchObject({ ok: false, reason: expect.stringContaining('cannot be used') });
  }, 60_000);
});
