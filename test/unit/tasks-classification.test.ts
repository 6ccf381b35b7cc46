import { describe, expect, it } from 'vitest';
import { classificationManifestSchema, type ClassificationManifest } from '../../src/inference/tasks/classification.js';
import { argmax, classificationMeasures, softmax } from '../../src/inference/tasks/classification.js';
import { taskOf } from '../../src/inference/manifest.js';
import { stretchGeometry } from '../../src/inference/preprocess.js';

const labels = ['ok', 'scratch', 'stain'];

function manifest(scoreType: 'logits' | 'probabilities', over: Record<string, unknown> = {}): ClassificationManifest {
  return classificationManifestSchema.parse({
    id: 'cls', version: '1', task: 'classification', sha256: 'a'.repeat(64),
    measures: ['prob:ok', 'prob:scratch', 'prob:stain', 'top_label'],
    labels,
    input: { name: 'input', width: 32, height: 32 },
    outputs: { scores: 'out', scoreType },
    card: { description: '', data: '', method: '', reproduce: '', metrics: {}, license: '' },
    ...over,
  });
}

const tensor = (values: number[], dims = [1, values.length]) => ({ out: { dims, data: Float32Array.from(values), type: 'float32' } });

describe('classification', () => {
  it('applies softmax to logits', () => {
    const { measures, overlays } = classificationMeasures(manifest('logits'), tensor([0, 4, 0]));
    const e4 = Math.exp(4);
    expect(measures.get('prob:ok')).toBeCloseTo(1 / (2 + e4), 6);
    expect(measures.get('prob:scratch')).toBeCloseTo(e4 / (2 + e4), 6);
    expect(measures.get('prob:stain')).toBeCloseTo(1 / (2 + e4), 6);
    expect(measures.get('top_label')).toBe(1);
    expect(overlays).toEqual([]);
  });

  it('uses probabilities as they are', () => {
    const { measures } = classificationMeasures(manifest('probabilities'), tensor([0.2, 0.1, 0.7]));
    expect(measures.get('prob:ok')).toBeCloseTo(0.2, 6);
    expect(measures.get('prob:scratch')).toBeCloseTo(0.1, 6);
    expect(measures.get('prob:stain')).toBeCloseTo(0.7, 6);
    expect(measures.get('top_label')).toBe(2);
  });

  it('names exactly the measures the manifest lists, in label order', () => {
    const m = manifest('logits');
    const { measures } = taskOf(m).run(m, tensor([1, 2, 3]), stretchGeometry(10, 10, 32, 32));
    expect([...measures.keys()].sort()).toEqual([...m.measures].sort());
  });

  it('softmax is stable for large logits and sums to 1', () => {
    const p = softmax([1000, 1001, 999]);
    expect(p.every(Number.isFinite)).toBe(true);
    expect(p.reduce((a, b) => a + b)).toBeCloseTo(1, 12);
    expect(p[1]).toBeGreaterThan(p[0]!);
  });

  it('top_label takes the first on a tie, and is NaN when a score is not finite', () => {
    expect(argmax([0.4, 0.4, 0.2])).toBe(0);
    expect(classificationMeasures(manifest('probabilities'), tensor([0.1, NaN, 0.2])).measures.get('top_label')).toBeNaN();
  });

  it('reads batch 0 of [N, C], float64 and int64 tensors too', () => {
    const two = classificationMeasures(manifest('probabilities'), tensor([0.1, 0.8, 0.1, 0.9, 0.05, 0.05], [2, 3]));
    expect(two.measures.get('top_label')).toBe(1);
    const f64 = classificationMeasures(manifest('probabilities'), { out: { dims: [1, 3], data: Float64Array.from([0.5, 0.25, 0.25]), type: 'float64' } });
    expect(f64.measures.get('prob:ok')).toBe(0.5);
    const i64 = classificationMeasures(manifest('logits'), { out: { dims: [1, 3], data: BigInt64Array.from([0n, 0n, 5n]), type: 'int64' } });
    expect(i64.measures.get('top_label')).toBe(2);
  });

  it('throws for an output whose class dimension is not the labels (a graph with a dynamic one)', () => {
    expect(() => classificationMeasures(manifest('logits'), tensor([1, 2]))).toThrow(/output "out" has shape \[1, 2\], but model.json has 3 labels/);
    expect(() => classificationMeasures(manifest('logits'), {})).toThrow(/no output "out"/);
  });
});
