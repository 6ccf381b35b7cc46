import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { taskOf } from '../../src/inference/manifest.js';
import { loadModelFolder } from '../../src/inference/model-registry.js';
import { pixelsToTensor, preparePixels, stretchGeometry } from '../../src/inference/preprocess.js';
import { repoRoot } from '../support/visq.js';

/**
 * The pretrained backbone visq ships (models/backbones/mobilenetv2-12-int8, from the ONNX Model Zoo)
 * is the network its makers published: it classifies a real photo as their reference preprocessing
 * does (torchvision Resize(256) + CenterCrop(224), computed by torchvision in fixtures/reference).
 */
describe('the shipped ImageNet backbone', () => {
  it('loads as a classification model of the registry, and classifies a photo of a cat as the torchvision reference does', async () => {
    const model = await loadModelFolder(path.join(repoRoot, 'models', 'backbones', 'mobilenetv2-12-int8'));
    const m = model.manifest;
    if (m.task !== 'classification') throw new Error('not a classifier');
    const session = await ort.InferenceSession.create(model.onnxPath);
    const classify = async (raw: Uint8Array) => {
      const t = pixelsToTensor(raw, m.input);
      const outputs = await session.run({ [m.input.name]: new ort.Tensor('float32', t.data, t.dims) });
      return taskOf(m).run(m, outputs, stretchGeometry(224, 224, 224, 224)).measures;
    };
    const photo = readFileSync(path.join(repoRoot, 'fixtures', 'reference', 'cat.jpg'));
    const visq = await classify((await preparePixels(photo, m.input, 1e8)).raw);
    const reference = await classify(await sharp(path.join(repoRoot, 'fixtures', 'reference', 'cat-torchvision-resize256-centercrop224.png')).removeAlpha().raw().toBuffer());

    const top3 = [...visq].filter(([k]) => k.startsWith('prob:')).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k]) => k);
    expect(top3).toEqual(['prob:Egyptian cat', 'prob:tiger cat', 'prob:tabby']);
    expect(visq.get('top_label')).toBe(m.labels.indexOf('Egyptian cat'));
    for (const label of ['Egyptian cat', 'tiger cat', 'tabby']) expect(visq.get(`prob:${label}`)).toBeCloseTo(reference.get(`prob:${label}`)!, 4);
    await session.release();
  });
});
