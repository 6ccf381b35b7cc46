import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestSchema, modelManifestSchema, taskMeasures } from '../../src/inference/manifest.js';
import { loadModelFolder, ModelLoadError } from '../../src/inference/model-registry.js';
import { classifierModel, probabilityMaskModel, segmentationGraph, segmentationModel, writeModelFolder, yoloModel, type BuiltModel } from '../support/onnx-models.js';
import { repoRoot } from '../support/visq.js';

const issues = (doc: unknown): string => {
  const r = manifestSchema.safeParse({ sha256: 'a'.repeat(64), ...(doc as object) });
  return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
};
const edit = (m: BuiltModel, over: Record<string, unknown>) => ({ ...m.manifest, ...over });

describe('the manifest schema', () => {
  it('accepts the shipped anomaly model unchanged, and each fixture', () => {
    const shipped = JSON.parse(readFileSync(path.join(repoRoot, 'models', 'surface-anomaly', 'model.json'), 'utf8'));
    expect(manifestSchema.parse(shipped)).toEqual(modelManifestSchema.parse(shipped));
    for (const m of [yoloModel(), classifierModel(), classifierModel('p', { probabilities: true }), segmentationModel(), probabilityMaskModel()]) {
      expect(issues(m.manifest)).toBe('');
    }
  });

  it('lists the measures each task yields', () => {
    expect(taskMeasures({ task: 'anomaly' })).toEqual(['anomaly_score']);
    expect(taskMeasures({ task: 'classification', labels: ['a', 'b'] })).toEqual(['prob:a', 'prob:b', 'top_label']);
    expect(taskMeasures({ task: 'detection', labels: ['a'] })).toEqual(['count:a', 'max_conf:a', 'max_area_px:a']);
    expect(taskMeasures({ task: 'segmentation', labels: ['bg', 'a'], background: 'bg' })).toEqual(['area_px:a']);
  });

  it.each([
    ['measures missing one and naming another', edit(classifierModel(), { measures: ['prob:ok', 'prob:scratch', 'prob:stain', 'prob:crack'] }),
      /measures: must be exactly what a classification model with these labels yields \(prob:ok, prob:scratch, prob:stain, top_label\): missing "top_label"; not yielded by this task: "prob:crack"/],
    ['a measure listed twice', edit(yoloModel(), { measures: ['count:scratch', 'count:scratch', 'max_conf:scratch', 'max_area_px:scratch', 'count:dent', 'max_conf:dent', 'max_area_px:dent'] }),
      /measures: .*listed twice: "count:scratch"/],
    ['an anomaly measure that is not anomaly_score', { ...JSON.parse(readFileSync(path.join(repoRoot, 'models', 'surface-anomaly', 'model.json'), 'utf8')), measures: ['anomaly_score', 'defect_area'] },
      /measures: .*not yielded by this task: "defect_area"/],
    ['an unknown task', edit(classifierModel(), { task: 'telepathy' }), /^task: Invalid discriminator value/],
    ['a classifier without scoreType', edit(classifierModel(), { outputs: { scores: 'logits' } }), /outputs.scoreType/],
    ['a misspelt option', edit(yoloModel(), { confidenceTreshold: 0.5 }), /Unrecognized key: "confidenceTreshold"/],
    ['a confidence threshold above 1', edit(yoloModel(), { confidenceThreshold: 25 }), /confidenceThreshold: /],
    ['duplicate labels', edit(yoloModel(), { labels: ['scratch', 'scratch'] }), /labels.1: duplicate label "scratch"/],
    ['a classifier with one label', edit(classifierModel(), { labels: ['ok'], measures: ['prob:ok', 'top_label'] }), /labels: a classifier needs at least 2 labels/],
    ['segmentation labels without the background', edit(segmentationModel(), { labels: ['scratch', 'stain'] }), /labels: must include the background label "background"/],
    ['a probability mask with 3 labels', edit(segmentationModel(), { outputs: { mask: 'masks', layout: 'probability' } }), /labels: a probability mask has exactly 2 labels \(background and the defect\), not 3/],
    ['maskThreshold on per-class scores', edit(segmentationModel(), { maskThreshold: 0.3 }), /maskThreshold: applies only to outputs.layout "probability", not "scores"/],
  ])('refuses %s', (_name, doc, message) => {
    expect(issues(doc)).toMatch(message);
  });
});

describe('checking a manifest against its graph at load', () => {
  let dir: string;
  beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'visq-tasks-')); });
  afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

  const load = async (m: BuiltModel) => {
    const folder = await writeModelFolder(path.join(dir, `m-${Math.random().toString(36).slice(2)}`), m);
    return { folder, result: await loadModelFolder(folder).catch((e: unknown) => e) };
  };

  it('loads every fixture (a symbolic batch axis and a symbolic class axis pass)', async () => {
    const symbolic: BuiltModel = {
      ...segmentationModel('symbolic'),
      bytes: segmentationGraph({ weights: [[0, 0, 0], [1, -1, -1], [-1, -1, 1]], bias: [0.5, 0, 0], outputDims: ['N', 'C', 'H', 'W'] }),
    };
    for (const m of [yoloModel(), classifierModel(), classifierModel('p', { probabilities: true }), segmentationModel(), probabilityMaskModel(), symbolic]) {
      const { result } = await load(m);
      expect(result).not.toBeInstanceOf(Error);
    }
  });

  it.each([
    ['detection labels that are not the graph’s classes', { ...yoloModel(), manifest: edit(yoloModel(), { labels: ['scratch', 'dent', 'crack'], measures: taskMeasures({ task: 'detection', labels: ['scratch', 'dent', 'crack'] }) }) },
      /output "output0" has shape \[1, 6, 4\]: 4 box values \+ 2 classes in the graph, but model.json has 3 labels \(scratch, dent, crack\)/],
    ['a missing output', { ...yoloModel(), manifest: edit(yoloModel(), { outputs: { predictions: 'output1' } }) }, /the graph has no output "output1" \(it has output0\)/],
    ['a missing input', { ...yoloModel(), manifest: edit(yoloModel(), { input: { name: 'input', width: 64, height: 64, resize: 'letterbox' } }) }, /the graph has no input "input" \(it has images\)/],
    ['classifier labels that are not the graph’s classes', { ...classifierModel(), manifest: edit(classifierModel(), { labels: ['ok', 'nok'], measures: ['prob:ok', 'prob:nok', 'top_label'] }) },
      /output "logits" has shape \[batch, 3\]: 3 classes in the graph, but model.json has 2 labels \(ok, nok\)/],
    ['a classifier output of the wrong rank', { ...segmentationModel(), manifest: edit(classifierModel(), { outputs: { scores: 'masks', scoreType: 'logits' }, input: segmentationModel().manifest.input }) },
      /output "masks" has shape \[1, 3, 32, 32\] \(4 dimensions\), but class scores are \[N, classes\] \(2 dimensions\)/],
    ['segmentation labels that are not the graph’s classes', { ...segmentationModel(), manifest: edit(segmentationModel(), { labels: ['background', 'scratch'], measures: ['area_px:scratch'] }) },
      /output "masks" has shape \[1, 3, 32, 32\]: 3 classes in the graph, but model.json has 2 labels \(background, scratch\)/],
    ['a probability mask with several channels', { ...segmentationModel(), manifest: edit(probabilityMaskModel(), { outputs: { mask: 'masks', layout: 'probability' } }) },
      /output "masks" has shape \[1, 3, 32, 32\]: 3 channels, but a "probability" mask has 1 \(\[N, 1, H, W\]\); per-class scores need outputs.layout "scores"/],
    ['a wrong channel count', { ...classifierModel(), manifest: edit(classifierModel(), { input: { name: 'input', width: 32, height: 32, channels: 'GRAY' } }) },
      /input "input" has shape \[batch, 3, 32, 32\], but model.json describes \[N, 1, 32, 32\] \(NCHW\): 3 channels in the graph, 1 for GRAY/],
    ['a wrong input size', { ...yoloModel(), manifest: edit(yoloModel(), { input: { name: 'images', width: 640, height: 640, resize: 'letterbox' } }) },
      /input "images" has shape \[1, 3, 64, 64\], but model.json describes \[N, 3, 640, 640\] \(NCHW\)/],
  ])('refuses %s, naming the folder', async (_name, model, message) => {
    const { folder, result } = await load(model as BuiltModel);
    expect(result).toBeInstanceOf(ModelLoadError);
    expect((result as Error).message).toMatch(message);
    expect((result as Error).message).toContain(folder);
  });
});
