import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClassificationManifest } from '../../src/inference/manifest.js';
import { loadRegistry } from '../../src/inference/model-registry.js';
import { heldOutMetrics, listSet, openSession, runClassifier, type HeldOutMetrics } from '../../tools/train-defect-classifier/lib.js';
import { main as generateCli } from '../../tools/fixtures/generate.js';
import { repoRoot } from '../support/visq.js';

/**
 * The shipped supervised model models/defect-classifier, checked without retraining: a fresh
 * held-out set from the fixture generator (a seed no build uses: the build's sets are 4101, 4202,
 * 4303), run through onnxruntime-node exactly as a worker runs it (the manifest's input spec,
 * toInputTensor, the classification task's measures), must score far above chance and near the
 * figures its model card claims. Rebuild the model with tools/train-defect-classifier/build.sh.
 */
const SEED = 4404;
const PER_CLASS = 10;
const LABELS = ['good', 'scratch', 'pit', 'crack', 'stain'];

let dir: string;
let manifest: ClassificationManifest;
let session: ort.InferenceSession;
let measured: HeldOutMetrics;
let card: { accuracy: number; auroc_good_vs_defect: number; macro_f1: number };

beforeAll(async () => {
  const registry = await loadRegistry(path.join(repoRoot, 'models'));
  const model = registry.get('defect-classifier');
  if (!model) throw new Error('models/defect-classifier is not in the registry');
  if (model.manifest.task !== 'classification') throw new Error(`defect-classifier has task ${model.manifest.task}`);
  manifest = model.manifest;
  card = manifest.card.metrics as typeof card;

  dir = await mkdtemp(path.join(os.tmpdir(), 'visq-defect-classifier-'));
  // The generator's own command line (`npx tsx tools/fixtures/generate.ts …`), in this process.
  const generated = await generateCli(['--out', dir, '--part', 'machined-surface', '--good', String(PER_CLASS), '--bad', String(PER_CLASS), '--seed', String(SEED), '--quiet']);
  if (generated !== 0) throw new Error(`the fixture generator exited ${generated}`);
  session = await openSession(model.onnxPath);
  const { predictions } = await runClassifier(manifest, session, await listSet(dir, manifest.labels));
  measured = heldOutMetrics(manifest.labels, predictions);
});

afterAll(async () => {
  await session?.release();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the shipped defect classifier', () => {
  it('is a classification model of the five machined-surface labels with a complete card', () => {
    expect(manifest).toMatchObject({ id: 'defect-classifier', version: '1.0.0', task: 'classification', outputs: { scores: 'logits', scoreType: 'logits' } });
    expect(manifest.labels).toEqual(LABELS);
    expect(manifest.measures).toEqual([...LABELS.map((l) => `prob:${l}`), 'top_label']);
    expect(manifest.input).toMatchObject({ name: 'input', layout: 'NCHW', channels: 'RGB', resize: 'stretch' });
    expect(manifest.card.reproduce).toBe('bash tools/train-defect-classifier/build.sh');
    for (const key of ['accuracy', 'macro_f1', 'auroc_good_vs_defect'] as const) expect(card[key]).toBeGreaterThan(0.9);
  });

  it(`classifies a fresh held-out set (seed ${SEED}, ${PER_CLASS} per class) far above chance and near its card`, () => {
    expect(measured.images).toBe(PER_CLASS * LABELS.length);
    // Chance is 0.2 for five balanced classes and 0.5 for the AUROC. The shipped model scored 0.96–1.0
    // accuracy and 1.0 AUROC on eight such sets (seeds 4404–4411); these bars leave room for a rebuild.
    expect(measured.accuracy).toBeGreaterThanOrEqual(0.88);
    expect(measured.accuracy).toBeGreaterThanOrEqual(card.accuracy - 0.08);
    expect(measured.macro_f1).toBeGreaterThanOrEqual(0.86);
    expect(measured.auroc_good_vs_defect).toBeGreaterThanOrEqual(0.98);
    expect(measured.auroc_good_vs_defect).toBeGreaterThanOrEqual(card.auroc_good_vs_defect - 0.02);
    for (const label of LABELS) expect(measured.per_class[label]!.recall, `recall of ${label}`).toBeGreaterThanOrEqual(0.7);
  });
});
