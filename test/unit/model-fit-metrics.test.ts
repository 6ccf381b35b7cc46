import { describe, expect, it } from 'vitest';
import { auroc, bestF1Threshold, confusionAt, f1Score, quantile } from '../../src/model-fit/metrics.js';
import { Random } from '../../src/model-fit/random.js';

describe('auroc', () => {
  it.each([
    // scores, labels, expected
    [[0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 1], // perfectly separated
    [[0.8, 0.9, 0.1, 0.2], [0, 0, 1, 1], 0], // perfectly reversed
    [[0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5], // all tied
    [[0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75], // the scikit-learn roc_auc_score example
    [[0.3, 0.5, 0.5, 0.9], [0, 0, 1, 1], 0.875], // pairs won 1 + ½ (the tie) + 1 + 1, of 4
    [[1, 2, 3], [true, false, true], 0.5], // booleans as labels
  ])('auroc(%j, %j) = %d', (scores, labels, expected) => {
    expect(auroc(scores, labels)).toBeCloseTo(expected, 12);
  });

  it('equals the pairwise definition on random data with many ties', () => {
    const rng = new Random(7);
    const scores = Array.from({ length: 300 }, () => Math.round(rng.float() * 20) / 20);
    const labels = scores.map((s) => (rng.float() < 0.3 + 0.4 * s ? 1 : 0));
    let won = 0;
    let pairs = 0;
    scores.forEach((p, i) => {
      if (!labels[i]) return;
      scores.forEach((n, j) => {
        if (labels[j]) return;
        pairs++;
        won += p > n ? 1 : p === n ? 0.5 : 0;
      });
    });
    expect(auroc(scores, labels)).toBeCloseTo(won / pairs, 12);
  });

  it('works on typed arrays (pixel maps)', () => {
    const scores = new Float32Array([0.1, 0.9, 0.2, 0.7]);
    const labels = new Uint8Array([0, 1, 0, 0]);
    expect(auroc(scores, labels)).toBe(1);
  });

  it('refuses a single class, mismatched lengths and NaN', () => {
    expect(() => auroc([0.1, 0.2], [0, 0])).toThrow(/anomalous and one good/);
    expect(() => auroc([0.1, 0.2], [0])).toThrow(/labels/);
    expect(() => auroc([0.1, Number.NaN], [0, 1])).toThrow(/NaN/);
  });
});

describe('f1 and thresholds', () => {
  const scores = [0.1, 0.3, 0.45, 0.55, 0.7, 0.9];
  const labels = [0, 0, 1, 0, 1, 1];

  it('counts predictions at or above the threshold as anomalous', () => {
    expect(confusionAt(scores, labels, 0.5)).toEqual({ truePositives: 2, falsePositives: 1, falseNegatives: 1, trueNegatives: 2 });
    expect(confusionAt([0.5], [1], 0.5).truePositives).toBe(1);
  });

  it.each([
    [0.5, (2 * 2) / (2 * 2 + 1 + 1)], // TP 2, FP 1, FN 1 → 2/3
    [0.0, (2 * 3) / (2 * 3 + 3)], // everything anomalous: precision 1/2, recall 1 → 2/3
    [0.95, 0], // nothing predicted anomalous
    [0.4, (2 * 3) / (2 * 3 + 1)], // TP 3, FP 1 → 6/7
  ])('f1 at %d', (threshold, expected) => {
    expect(f1Score(scores, labels, threshold)).toBeCloseTo(expected, 12);
  });

  it('bestF1Threshold picks a threshold in the gap between separable classes', () => {
    const best = bestF1Threshold([0.1, 0.2, 0.3, 0.7, 0.8], [0, 0, 0, 1, 1]);
    expect(best.f1).toBe(1);
    expect(best.threshold).toBeCloseTo(0.5, 12);
  });

  it('bestF1Threshold finds the best of the overlapping case', () => {
    const best = bestF1Threshold(scores, labels);
    expect(best.f1).toBeCloseTo(6 / 7, 12);
    expect(best.threshold).toBeCloseTo((0.3 + 0.45) / 2, 12);
  });

  it('quantile interpolates linearly', () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5], 0.9)).toBeCloseTo(4.6, 12);
    expect(quantile([7], 0.99)).toBe(7);
    expect(() => quantile([], 0.5)).toThrow();
  });
});
