import type { Characteristic, QualityPlan } from './quality-plan.js';

/**
 * The quality decision: plan × measured values → per-characteristic results and the verdict.
 * Pure code, no I/O (CONTRACT.md "Quality plan document").
 */
export type Verdict = 'PASS' | 'FAIL' | 'REVIEW';
export type CharacteristicResult = 'pass' | 'review' | 'fail';

/** Measured values of one image (view), keyed by model id then measure name. */
export type ViewMeasures = ReadonlyMap<string, ReadonlyMap<string, number>>;
/** Why a measured value cannot be trusted (its model broke what it promises), by model id then measure name. */
export type ViewProblems = ReadonlyMap<string, ReadonlyMap<string, string>>;

export interface EvaluatedCharacteristic {
  name: string;
  model: string;
  measure: string;
  severity: Characteristic['severity'];
  value: number | null;
  lsl: number | null;
  usl: number | null;
  guardBand: number;
  result: CharacteristicResult;
  /** Index of the image whose value decided the result. */
  view: number | null;
  /** Why the characteristic could not be evaluated, when it could not. */
  problem: string | null;
}

export interface Decision {
  verdict: Verdict;
  characteristics: EvaluatedCharacteristic[];
  /** Set when something could not be evaluated; never null for a REVIEW caused by it. */
  reason: string | null;
}

const rank: Record<CharacteristicResult, number> = { pass: 0, review: 1, fail: 2 };

/**
 * One value against its limits. Outside [lsl, usl] fails; on a limit is inside.
 * Inside and at most `guardBand` from a limit is review (a zero guard band has no review zone).
 */
export function judgeValue(value: number, lsl: number | null, usl: number | null, guardBand: number): CharacteristicResult {
  if ((lsl !== null && value < lsl) || (usl !== null && value > usl)) return 'fail';
  if (guardBand > 0 && ((lsl !== null && value - lsl <= guardBand) || (usl !== null && usl - value <= guardBand))) return 'review';
  return 'pass';
}

/** Distance to the nearest limit, negative outside: smaller is worse. */
function margin(value: number, lsl: number | null, usl: number | null): number {
  return Math.min(lsl === null ? Infinity : value - lsl, usl === null ? Infinity : usl - value);
}

export function evaluateCharacteristic(c: Characteristic, views: readonly ViewMeasures[], untrusted: readonly ViewProblems[] = []): EvaluatedCharacteristic {
  const lsl = c.lsl ?? null;
  const usl = c.usl ?? null;
  const base = { name: c.name, model: c.model, measure: c.measure, severity: c.severity, lsl, usl, guardBand: c.guardBand };
  if (views.length === 0) return { ...base, value: null, result: 'review', view: null, problem: 'no image was evaluated' };

  let worst: { value: number; result: CharacteristicResult; view: number } | null = null;
  for (const [view, measures] of views.entries()) {
    const value = measures.get(c.model)?.get(c.measure);
    if (value === undefined) return { ...base, value: null, result: 'review', view, problem: `model "${c.model}" gave no "${c.measure}" for image ${view}` };
    if (!Number.isFinite(value)) return { ...base, value: null, result: 'review', view, problem: `model "${c.model}" gave a non-finite "${c.measure}" (${value}) for image ${view}` };
    const why = untrusted[view]?.get(c.model)?.get(c.measure);
    if (why) return { ...base, value, result: 'review', view, problem: `model "${c.model}", image ${view}: ${why}` };
    const result = judgeValue(value, lsl, usl, c.guardBand);
    if (!worst || rank[result] > rank[worst.result] || (rank[result] === rank[worst.result] && margin(value, lsl, usl) < margin(worst.value, lsl, usl))) {
      worst = { value, result, view };
    }
  }
  return { ...base, value: worst!.value, result: worst!.result, view: worst!.view, problem: null };
}

export function decide(plan: QualityPlan, views: readonly ViewMeasures[], untrusted: readonly ViewProblems[] = []): Decision {
  const characteristics = plan.characteristics.map((c) => evaluateCharacteristic(c, views, untrusted));
  const problems = characteristics.filter((c) => c.problem).map((c) => `${c.name}: ${c.problem}`);
  const verdict: Verdict = characteristics.some((c) => c.result === 'fail')
    ? 'FAIL'
    : characteristics.some((c) => c.result === 'review')
      ? 'REVIEW'
      : 'PASS';
  return { verdict, characteristics, reason: problems.length ? problems.join('; ') : null };
}

/** An inspection that could not be evaluated at all (unusable image, model error after retries). */
export function undecidable(plan: QualityPlan, reason: string): Decision {
  return {
    verdict: 'REVIEW',
    reason,
    characteristics: plan.characteristics.map((c) => ({
      name: c.name, model: c.model, measure: c.measure, severity: c.severity,
      lsl: c.lsl ?? null, usl: c.usl ?? null, guardBand: c.guardBand,
      value: null, result: 'review', view: null, problem: reason,
    })),
  };
}

/** A reviewer's disposition turns into the final verdict the MES acts on. */
export type DispositionDecision = 'accept' | 'rework' | 'scrap';
export function finalVerdictOf(decision: DispositionDecision): Verdict {
  return decision === 'accept' ? 'PASS' : 'FAIL';
}

/** The meaning an electronic signature on a disposition carries (21 CFR 11.50(a)(3)). */
export function signatureMeaning(decision: DispositionDecision): string {
  return {
    accept: 'I accept this part as conforming',
    rework: 'I reject this part for rework',
    scrap: 'I reject this part as scrap',
  }[decision];
}

/** Whether a decided inspection waits for a person (CONTRACT.md `GET /v1/review`). */
export function needsReview(verdict: Verdict, plan: Pick<QualityPlan, 'confirmFail'>): boolean {
  return verdict === 'REVIEW' || (verdict === 'FAIL' && plan.confirmFail);
}
