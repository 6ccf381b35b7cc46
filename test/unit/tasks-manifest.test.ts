import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureSpecs, parseManifest, type Manifest } from '../../src/inference/manifest.js';
import { loadModelFolder, ModelLoadError } from '../../src/inference/model-registry.js';
import { classifierGraph, classifierModel, probabilityMaskModel, segmentationGraph, segmentationModel, writeModelFolder, yoloModel, yoloSegModel, type BuiltModel } from '../support/onnx-models.js';
import { repoRoot } from '../support/visq.js';
import { GraphBuilder } from '../../src/model-fit/onnx-graph.js';

const issues = (doc: unknown): string => {
  const r = parseManifest({ sha256: 'a'.repeat(64), ...(doc as object) });
  return r.ok ? '' : r.problems.join('; ');
};
const parse = (doc: unknown): Manifest => {
  const r = parseManifest({ sha256: 'a'.repeat(64), ...(doc as object) });
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.manifest;
};
const edit = (m: BuiltModel, over: Record<string, unknown>) => ({ ...m.manifest, ...over });
const shipped = JSON.parse(readFileSync(path.join(repoRoot, 'models', 'surface-anomaly', 'model.json'), 'utf8'));
const without = (o: Record<string, unknown>, key: string) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== key));

describe('the manifest schema', () => {
  it('accepts the shipped anomaly model unchanged, and each fixture', () => {
    expect(issues(shipped)).toBe('');
    for (const m of [yoloModel(), classifierModel(), classifierModel('p', { probabilities: true }), segmentationModel(), probabilityMaskModel(), yoloSegModel()]) {
      expect(issues(m.manifest)).toBe('');
    }
  });

  it('derives the measures from the task and its labels when the manifest leaves them out', () => {
    expect(parse(without(shipped, 'measures')).measures).toEqual(['anomaly_score']);
    expect(parse(without(classifierModel().manifest, 'measures')).measures).toEqual(['prob:ok', 'prob:scratch', 'prob:stain', 'top_label']);
    expect(parse(without(yoloModel().manifest, 'measures')).measures).toEqual(['count:scratch', 'max_conf:scratch', 'max_area_px:scratch', 'count:dent', 'max_conf:dent', 'max_area_px:dent']);
    expect(parse(without(segmentationModel().manifest, 'measures')).measures).toEqual(['area_px:scratch', 'area_px:stain']);
    expect(parse(yoloSegModel().manifest).measures).toEqual(['count:scratch', 'max_conf:scratch', 'max_area_px:scratch', 'area_px:scratch', 'count:dent', 'max_conf:dent', 'max_area_px:dent', 'area_px:dent']);
    // 1,000 ImageNet-style labels without listing 1,001 measures by hand.
    const labels = Array.from({ length: 1000 }, (_, i) => `class ${i}`);
    const big = parse({ ...without(classifierModel().manifest, 'measures'), labels });
    expect(big.measures).toHaveLength(1001);
  });

  it('states the values each measure promises', () => {
    const ranges = (m: Manifest) => measureSpecs(m).map((s) => [s.name, s.min, s.max, s.integer]);
    expect(ranges(parse(shipped))).toEqual([['anomaly_score', 0, 1, false]]);
    expect(ranges(parse(classifierModel().manifest))).toEqual([['prob:ok', 0, 1, false], ['prob:scratch', 0, 1, false], ['prob:stain', 0, 1, false], ['top_label', 0, 2, true]]);
    expect(ranges(parse(yoloModel().manifest)).slice(0, 3)).toEqual([['count:scratch', 0, 300, true], ['max_conf:scratch', 0, 1, false], ['max_area_px:scratch', 0, null, false]]);
  });

  it.each([
    ['measures missing one and naming another', edit(classifierModel(), { measures: ['prob:ok', 'prob:scratch', 'prob:stain', 'prob:crack'] }),
      /^measures: missing "top_label"; not yielded by a classification model: "prob:crack" \(a classification model with these labels yields "prob:ok", "prob:scratch", "prob:stain", "top_label"; leave "measures" out/],
    ['a measure listed twice', edit(yoloModel(), { measures: ['count:scratch', 'count:scratch', 'max_conf:scratch', 'max_area_px:scratch', 'count:dent', 'max_conf:dent', 'max_area_px:dent'] }),
      /^measures: listed twice: "count:scratch"/],
    ['an anomaly measure that is not anomaly_score', { ...shipped, measures: ['anomaly_score', 'defect_area'] }, /^measures: not yielded by an? anomaly model: "defect_area"/],
    ['an unknown task, with the closest name', edit(classifierModel(), { task: 'clasification' }), /^task: unknown task "clasification" \(did you mean "classification"\?\); one of "anomaly", "classification"/],
    ['a classifier without scoreType', edit(classifierModel(), { outputs: { scores: 'logits' } }), /outputs.scoreType/],
    ['a misspelt option, with the closest name', edit(yoloModel(), { confidenceTreshold: 0.5 }), /^unknown key "confidenceTreshold" \(did you mean "confidenceThreshold"\?\)/],
    ['a misspelt anomaly option (it was silently ignored)', { ...without(shipped, 'scoreNormalization'), scoreNormalisation: shipped.scoreNormalization }, /^unknown key "scoreNormalisation" \(did you mean "scoreNormalization"\?\)/],
    ['a misspelt input field', edit(segmentationModel(), { input: { name: 'input', width: 64, height: 64, resise: 'letterbox' } }), /^input: unknown key "resise" \(did you mean "resize"\?\)/],
    ['a misspelt output field', edit(segmentationModel(), { outputs: { mask: 'masks', layuot: 'scores' } }), /^outputs: unknown key "layuot" \(did you mean "layout"\?\)/],
    ['an unknown card field', edit(classifierModel(), { card: { ...(classifierModel().manifest.card as object), licence: 'MIT' } }), /^card: unknown key "licence" \(did you mean "license"\?\)/],
    ['a confidence threshold above 1', edit(yoloModel(), { confidenceThreshold: 25 }), /confidenceThreshold: /],
    ['duplicate labels, with the fix', edit(yoloModel(), { labels: ['scratch', 'scratch'], measures: undefined }), /^labels.1: "scratch" is also label 0: measure names must be unique, so rename one of them \(e.g. "scratch \(0\)" and "scratch \(1\)"\)/],
    ['a classifier with one label', edit(classifierModel(), { labels: ['ok'], measures: ['prob:ok', 'top_label'] }), /labels: a classifier needs at least 2 labels/],
    ['segmentation labels without the background', edit(segmentationModel(), { labels: ['scratch', 'stain'] }), /labels: must include the background label "background"/],
    ['a probability mask with 3 labels', edit(segmentationModel(), { outputs: { mask: 'masks', layout: 'probability' } }), /labels: a probability mask has exactly 2 labels \(background and the defect\), not 3/],
    ['maskThreshold on per-class scores', edit(segmentationModel(), { maskThreshold: 0.3 }), /maskThreshold: applies only to outputs.layout "probability", not "scores"/],
    ['a center crop for a mask', edit(segmentationModel(), { input: { name: 'input', width: 64, height: 64, resize: 'center-crop' } }), /input.resize: a mask must cover the whole image: use "stretch" or "letterbox", not "center-crop"/],
    ['a shorter side below the crop', edit(classifierModel(), { input: { name: 'input', width: 32, height: 32, resize: 'center-crop', shorterSide: 16 } }), /input.shorterSide: 16 is smaller than the 32-pixel crop/],
    ['an unknown kernel', edit(classifierModel(), { input: { name: 'input', width: 32, height: 32, interpolation: 'bicubic' } }), /input.interpolation: /],
  ])('refuses %s', (_name, doc, message) => {
    expect(issues(doc)).toMatch(message);
  });

  it('cuts long lists short: a mistake in a 1,000-label manifest does not print 1,000 names', () => {
    const labels = Array.from({ length: 1000 }, (_, i) => `class ${i}`);
    const message = issues({ ...classifierModel().manifest, labels, measures: ['prob:class 0'] });
    expect(message).toMatch(/missing "prob:class 1", "prob:class 2", "prob:class 3", "prob:class 4", "prob:class 5" …and 995 more/);
    expect(message.length).toBeLessThan(600);
  });

  it('fills in what each resize mode defaults to, as the tool it comes from does', () => {
    const input = (i: Record<string, unknown>) => parse(edit(classifierModel(), { input: { name: 'input', width: 224, height: 224, ...i } })).input;
    expect(input({})).toMatchObject({ resize: 'stretch', interpolation: 'lanczos3' });
    expect(input({ resize: 'letterbox' })).toMatchObject({ interpolation: 'bilinear' });
    expect(input({ resize: 'center-crop' })).toMatchObject({ interpolation: 'bilinear-antialias', shorterSide: 256 });
    expect(parse(yoloModel().manifest).input).toMatchObject({ resize: 'letterbox', interpolation: 'bilinear' });
    // A manifest written back from its parsed form parses to the same (model fit and eval write them).
    const m = parse(edit(classifierModel(), { input: { name: 'input', width: 224, height: 224, resize: 'center-crop' } }));
    expect(parse(JSON.parse(JSON.stringify(m)))).toEqual(m);
    expect(parse(JSON.parse(JSON.stringify(parse(shipped))))).toEqual(parse(shipped));
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
    for (const m of [yoloModel(), classifierModel(), classifierModel('p', { probabilities: true }), segmentationModel(), probabilityMaskModel(), symbolic, yoloSegModel()]) {
      const { result } = await load(m);
      expect(result).not.toBeInstanceOf(Error);
    }
  });

  /** An ImageNet-style classifier's [N, 1000] logits under an anomaly manifest (a PASS with anomaly_score −0.64 once). */
  const logitsAsAnomaly = (): BuiltModel => ({
    bytes: classifierGraph({ weights: Array.from({ length: 1000 }, (_, i) => [i % 3 - 1, 0, 0]) }),
    manifest: { ...edit(classifierModel(), {}), task: 'anomaly', outputs: { score: 'logits' }, labels: undefined, measures: undefined },
  });

  it('refuses an anomaly score that is really a classifier’s logits, from the graph’s shape', async () => {
    const { result } = await load(logitsAsAnomaly());
    expect(result).toBeInstanceOf(ModelLoadError);
    expect((result as Error).message).toMatch(/output "logits" has shape \[batch, 1000\], but an anomaly score is one value per image \(\[N\] or \[N, 1\]\) — 1000 values per image look like class scores, which a "classification" model reads/);
  });

  it('refuses it too when the graph leaves the shape open: the run on a generated image shows it', async () => {
    // The logits reshaped by a shape computed from the image: no runtime can know it before a run.
    const g = new GraphBuilder('open_shape');
    const input = g.input('input', ['batch', 3, 32, 32]);
    const means = g.op('ReduceMean', [input], { axes: { ints: [2, 3] }, keepdims: { int: 0 } }, 'means');
    const logits = g.op('MatMul', [means, g.floatTensor('w', new Array(3000).fill(0.001), [3, 1000])], {}, 'fc');
    const dataShape = g.op('Cast', [g.op('Add', [g.op('Mul', [g.op('ReduceMean', [input], { keepdims: { int: 0 } }), g.floatTensor('zero', [0], [])]), g.floatTensor('shape', [1, 1000], [2])])], { to: { int: 7 } }, 'data_shape');
    g.output(g.op('Reshape', [logits, dataShape], {}, 'reshaped'), 'logits', ['a', 'b']);
    const { result } = await load({ bytes: g.toBytes(), manifest: logitsAsAnomaly().manifest });
    expect(result).toBeInstanceOf(ModelLoadError);
    expect((result as Error).message).toMatch(/on a generated image, output "logits" has shape \[1, 1000\], but an anomaly score is one value per image/);
  });

  it('runs every model once at load and keeps what the run showed', async () => {
    const { result } = await load(classifierModel());
    const model = result as Awaited<ReturnType<typeof loadModelFolder>>;
    expect(model.dryRun.outputs).toEqual({ logits: [1, 3] });
    expect(Object.keys(model.dryRun.measures)).toEqual(['prob:ok', 'prob:scratch', 'prob:stain', 'top_label']);
    expect(model.dryRun.warnings).toEqual([]);
  });

  it('takes 4-channel models (RGBA, or RGB and a fourth band) when the manifest says so, and says so when it does not', async () => {
    const fourChannels = classifierGraph({ weights: [[0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 1, 1]] });
    const rgba = await load({ bytes: fourChannels, manifest: edit(classifierModel(), { input: { name: 'input', width: 32, height: 32, channels: 'RGBA' } }) });
    expect(rgba.result).not.toBeInstanceOf(Error);
    const rgb = await load({ bytes: fourChannels, manifest: classifierModel().manifest });
    expect((rgb.result as Error).message).toMatch(/input "input" has shape \[batch, 4, 32, 32\], but model.json describes \[N, 3, 32, 32\] \(NCHW\): 4 channels in the graph, 3 for RGB; a 4-channel model takes "channels": "RGBA"/);
  });

  it.each([
    ['detection labels that are not the graph’s classes', { ...yoloModel(), manifest: edit(yoloModel(), { labels: ['scratch', 'dent', 'crack'], measures: undefined }) },
      /output "output0" has shape \[1, 6, 4\]: 4 box values \+ 2 classes in the graph, but model.json has 3 labels \("scratch", "dent", "crack"\)/],
    ['a missing output', { ...yoloModel(), manifest: edit(yoloModel(), { outputs: { predictions: 'output1' } }) }, /the graph has no output "output1" \(it has output0\)/],
    ['a missing input', { ...yoloModel(), manifest: edit(yoloModel(), { input: { name: 'input', width: 64, height: 64, resize: 'letterbox' } }) }, /the graph has no input "input" \(it has images\)/],
    ['classifier labels that are not the graph’s classes', { ...classifierModel(), manifest: edit(classifierModel(), { labels: ['ok', 'nok'], measures: ['prob:ok', 'prob:nok', 'top_label'] }) },
      /output "logits" has shape \[batch, 3\]: 3 classes in the graph, but model.json has 2 labels \("ok", "nok"\)/],
    ['a classifier output of the wrong rank', { ...segmentationModel(), manifest: edit(classifierModel(), { outputs: { scores: 'masks', scoreType: 'logits' }, input: segmentationModel().manifest.input }) },
      /output "masks" has shape \[1, 3, 32, 32\] \(4 dimensions\), but class scores are \[N, classes\] \(2 dimensions\)/],
    ['segmentation labels that are not the graph’s classes', { ...segmentationModel(), manifest: edit(segmentationModel(), { labels: ['background', 'scratch'], measures: ['area_px:scratch'] }) },
      /output "masks" has shape \[1, 3, 32, 32\]: 3 classes in the graph, but model.json has 2 labels \("background", "scratch"\)/],
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
