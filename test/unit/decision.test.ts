import { describe, expect, it } from 'vitest';
import { decide, finalVerdictOf, judgeValue, needsReview, undecidable, type ViewMeasures } from '../../src/quality/decision.js';
import { qualityPlanSchema } from '../../src/quality/quality-plan.js';

const view = (values: Record<string, number>): ViewMeasures =>
  new Map([['m', new Map(Object.entries(values))]]);

describe('judgeValue', () => {
  it.each([
    // value, lsl, usl, guardBand, expected
    [0.2, null, 0.5, 0.1, 'pass'],
    [0.39, null, 0.5, 0.1, 'pass'],
    [0.4, null, 0.5, 0.1, 'review'], // exactly guardBand from the limit is within it
    [0.45, null, 0.5, 0.1, 'review'],
    [0.5, null, 0.5, 0.1, 'review'], // on the limit is inside the tolerance
    [0.5000001, null, 0.5, 0.1, 'fail'],
    [0.5, null, 0.5, 0, 'pass'], // no guard band: no review zone, the limit itself passes
    [0.51, null, 0.5, 0, 'fail'],
    [-1e9, null, 0.5, 0.1, 'pass'], // no lsl: unbounded below
    [1e9, 2, null, 0.5, 'pass'], // no usl: unbounded above
    [2, 2, null, 0.5, 'review'],
    [1.99, 2, null, 0.5, 'fail'],
    [2.5, 2, null, 0.5, 'review'],
    [2.51, 2, null, 0.5, 'pass'],
    [5, 0, 10, 1, 'pass'], // both limits
    [0.5, 0, 10, 1, 'review'],
    [9.5, 0, 10, 1, 'review'],
    [-0.1, 0, 10, 1, 'fail'],
    [10.1, 0, 10, 1, 'fail'],
    [3, 3, 3, 0, 'pass'], // degenerate tolerance: only the nominal passes
    [3.01, 3, 3, 0, 'fail'],
  ] as const)('%s in [%s, %s] with guard band %s is %s', (value, lsl, usl, gb, expected) => {
    expect(judgeValue(value, lsl, usl, gb)).toBe(expected);
  });
});

describe('decide', () => {
  const plan = qualityPlanSchema.parse({
    partNumber: 'PN-1',
    characteristics: [
      { name: 'a', model: 'm', measure: 'x', usl: 0.5, guardBand: 0.1 },
      { name: 'b', model: 'm', measure: 'y', lsl: 1, usl: 3, guardBand: 0.2 },
    ],
  });

  it.each([
    [{ x: 0.1, y: 2 }, 'PASS', ['pass', 'pass']],
    [{ x: 0.45, y: 2 }, 'REVIEW', ['review', 'pass']],
    [{ x: 0.45, y: 0.5 }, 'FAIL', ['review', 'fail']], // any fail wins over review
    [{ x: 0.9, y: 2 }, 'FAIL', ['fail', 'pass']],
    [{ x: 0.1, y: 2.9 }, 'REVIEW', ['pass', 'review']],
  ] as const)('%o → %s', (values, verdict, results) => {
    const d = decide(plan, [view(values)]);
    expect(d.verdict).toBe(verdict);
    expect(d.characteristics.map((c) => c.result)).toEqual(results);
    expect(d.reason).toBeNull();
  });

  it('a missing measure makes the characteristic review, with a reason', () => {
    const d = decide(plan, [view({ x: 0.1 })]);
    expect(d.verdict).toBe('REVIEW');
    expect(d.characteristics[1]).toMatchObject({ result: 'review', value: null });
    expect(d.reason).toMatch(/b: model "m" gave no "y"/);
  });

  it('a missing model makes the characteristic review', () => {
    const d = decide(plan, [new Map()]);
    expect(d.verdict).toBe('REVIEW');
    expect(d.reason).toMatch(/a: .*no "x"/);
  });

  it.each([NaN, Infinity, -Infinity])('a non-finite value (%s) is never a pass', (bad) => {
    const d = decide(plan, [view({ x: bad, y: 2 })]);
    expect(d.verdict).toBe('REVIEW');
    expect(d.characteristics[0]).toMatchObject({ result: 'review', value: null });
    expect(d.reason).toMatch(/non-finite/);
  });

  it('a non-finite value does not hide a failure elsewhere', () => {
    expect(decide(plan, [view({ x: NaN, y: 10 })]).verdict).toBe('FAIL');
  });

  it('no images at all is review, never pass', () => {
    const d = decide(plan, []);
    expect(d.verdict).toBe('REVIEW');
    expect(d.reason).toMatch(/no image/);
  });

  it('several views: the worst view decides and is named', () => {
    const d = decide(plan, [view({ x: 0.1, y: 2 }), view({ x: 0.7, y: 2 }), view({ x: 0.45, y: 2 })]);
    expect(d.verdict).toBe('FAIL');
    expect(d.characteristics[0]).toMatchObject({ value: 0.7, view: 1, result: 'fail' });
  });

  it('several views with the same result: the one closest to a limit is reported', () => {
    const d = decide(plan, [view({ x: 0.1, y: 2 }), view({ x: 0.3, y: 1.5 })]);
    expect(d.verdict).toBe('PASS');
    expect(d.characteristics[0]).toMatchObject({ value: 0.3, view: 1 });
    expect(d.characteristics[1]).toMatchObject({ value: 1.5, view: 1 });
  });

  it('undecidable inspections are REVIEW with the reason on every characteristic', () => {
    const d = undecidable(plan, 'image could not be decoded');
    expect(d.verdict).toBe('REVIEW');
    expect(d.reason).toBe('image could not be decoded');
    expect(d.characteristics.every((c) => c.result === 'review' && c.value === null)).toBe(true);
  });
});

describe('dispositions and the review queue', () => {
  it.each([['accept', 'PASS'], ['rework', 'FAIL'], ['scrap', 'FAIL']] as const)('%s → %s', (d, v) => {
    expect(finalVerdictOf(d)).toBe(v);
  });
  it.each([
    ['REVIEW', false, true], ['REVIEW', true, true], ['FAIL', false, false], ['FAIL', true, true], ['PASS', true, false],
  ] as const)('%s with confirmFail=%s needs review: %s', (verdict, confirmFail, expected) => {
    expect(needsReview(verdict, { confirmFail })).toBe(expected);
  });
});
