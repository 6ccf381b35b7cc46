import type { CharacteristicResult, Verdict } from './decision.js';

export interface LotPart {
  partNumber: string;
  receivedAt: Date;
  /** The disposition's verdict where there is one, else the model's; null while undecided. */
  verdict: Verdict | null;
  characteristics: { name: string; result: CharacteristicResult }[];
}

export interface PChartPoint { start: string; n: number; defective: number; p: number; ucl: number; lcl: number }

export interface LotStatistics {
  counts: { PASS: number; FAIL: number; REVIEW: number; pending: number };
  /** Parts with a PASS or FAIL verdict. */
  decided: number;
  /** PASS ÷ decided; null before any part is decided. */
  yield: number | null;
  /** For parts that ended FAIL: how often each characteristic was out of its limits or guard band. */
  pareto: { characteristic: string; count: number }[];
  pChart: { bucketSeconds: number; pBar: number | null; points: PChartPoint[] };
}

/** Subgroup widths the p-chart may use; the finest one that gives at most `maxPoints` subgroups wins. */
const bucketChoices = [60, 300, 900, 3600, 4 * 3600, 86_400, 7 * 86_400];
const maxPoints = 40;

export function lotStatistics(parts: readonly LotPart[]): LotStatistics {
  const counts = { PASS: 0, FAIL: 0, REVIEW: 0, pending: 0 };
  const pareto = new Map<string, number>();
  for (const part of parts) {
    if (part.verdict === null) counts.pending++;
    else counts[part.verdict]++;
    if (part.verdict === 'FAIL') {
      for (const c of part.characteristics) if (c.result !== 'pass') pareto.set(c.name, (pareto.get(c.name) ?? 0) + 1);
    }
  }
  const decided = counts.PASS + counts.FAIL;
  return {
    counts,
    decided,
    yield: decided ? counts.PASS / decided : null,
    pareto: [...pareto].map(([characteristic, count]) => ({ characteristic, count }))
      .sort((a, b) => b.count - a.count || a.characteristic.localeCompare(b.characteristic)),
    pChart: pChart(parts.filter((p) => p.verdict === 'PASS' || p.verdict === 'FAIL')),
  };
}

/**
 * A p-chart with subgroups of varying size: each subgroup gets its own 3-sigma limits,
 * p̄ ± 3·√(p̄(1−p̄)/nᵢ), clipped to [0, 1].
 */
function pChart(decided: readonly LotPart[]): LotStatistics['pChart'] {
  if (decided.length === 0) return { bucketSeconds: bucketChoices[0]!, pBar: null, points: [] };
  // A loop, not Math.min(...times): a lot of 200,000 parts would overflow the call stack.
  let first = Infinity;
  let last = -Infinity;
  for (const p of decided) {
    first = Math.min(first, p.receivedAt.getTime());
    last = Math.max(last, p.receivedAt.getTime());
  }
  const span = (last - first) / 1000;
  const bucketSeconds = bucketChoices.find((b) => span / b < maxPoints) ?? bucketChoices[bucketChoices.length - 1]!;
  const origin = Math.floor(first / 1000 / bucketSeconds) * bucketSeconds;
  const groups = new Map<number, { n: number; defective: number }>();
  for (const part of decided) {
    const k = Math.floor((part.receivedAt.getTime() / 1000 - origin) / bucketSeconds);
    const g = groups.get(k) ?? { n: 0, defective: 0 };
    g.n++;
    if (part.verdict === 'FAIL') g.defective++;
    groups.set(k, g);
  }
  const pBar = decided.filter((p) => p.verdict === 'FAIL').length / decided.length;
  const points = [...groups].sort(([a], [b]) => a - b).map(([k, g]) => {
    const sigma = Math.sqrt((pBar * (1 - pBar)) / g.n);
    return {
      start: new Date((origin + k * bucketSeconds) * 1000).toISOString(),
      n: g.n,
      defective: g.defective,
      p: g.defective / g.n,
      ucl: Math.min(1, pBar + 3 * sigma),
      lcl: Math.max(0, pBar - 3 * sigma),
    };
  });
  return { bucketSeconds, pBar, points };
}
