import { describe, expect, it } from 'vitest';
import { lotStatistics, type LotPart } from '../../src/quality/lot-statistics.js';

const t0 = Date.UTC(2026, 10, 22, 6, 0, 0);
const part = (minute: number, verdict: LotPart['verdict'], failing: string[] = []): LotPart => ({
  partNumber: 'PN-1',
  receivedAt: new Date(t0 + minute * 60_000),
  verdict,
  characteristics: [{ name: 'surface', result: failing.includes('surface') ? 'fail' : 'pass' }, { name: 'scratch', result: failing.includes('scratch') ? 'review' : 'pass' }],
});

describe('lotStatistics', () => {
  it('counts, yield over decided parts, and a Pareto of what failed parts were out on', () => {
    const s = lotStatistics([
      part(0, 'PASS'), part(1, 'FAIL', ['surface']), part(2, 'FAIL', ['surface', 'scratch']), part(3, 'REVIEW', ['scratch']), part(4, null), part(5, 'PASS'),
    ]);
    expect(s.counts).toEqual({ PASS: 2, FAIL: 2, REVIEW: 1, pending: 1 });
    expect(s.decided).toBe(4);
    expect(s.yield).toBe(0.5);
    expect(s.pareto).toEqual([{ characteristic: 'surface', count: 2 }, { characteristic: 'scratch', count: 1 }]);
  });

  it('p-chart: subgroups in time with 3-sigma limits for their own size', () => {
    // 2 hours of parts: 1-minute buckets would give 120 points, 5-minute ones 24.
    const parts: LotPart[] = [];
    for (let m = 0; m < 120; m++) parts.push(part(m, m % 10 === 0 ? 'FAIL' : 'PASS', ['surface']));
    const { pChart } = lotStatistics(parts);
    expect(pChart.bucketSeconds).toBe(300);
    expect(pChart.points).toHaveLength(24);
    expect(pChart.pBar).toBeCloseTo(0.1, 10);
    const first = pChart.points[0]!;
    expect(first).toMatchObject({ start: new Date(t0).toISOString(), n: 5, defective: 1, p: 0.2 });
    const sigma = Math.sqrt((0.1 * 0.9) / 5);
    expect(first.ucl).toBeCloseTo(0.1 + 3 * sigma, 10);
    expect(first.lcl).toBe(0); // clipped: p̄ − 3σ < 0
  });

  it('an empty or undecided lot has no yield and no p-chart points', () => {
    const s = lotStatistics([part(0, null), part(1, 'REVIEW')]);
    expect(s.yield).toBeNull();
    expect(s.pChart.points).toEqual([]);
    expect(s.pChart.pBar).toBeNull();
  });
});
