/**
 * Where the fitted model's score threshold goes, from raw scores of images the statistics did not
 * see. The published score is anomalib's normalisation clamp((x − t)/(max − min) + 0.5, 0, 1), so
 * the threshold t maps to 0.5 whatever the rule:
 *  - good images only (the default): t at a high quantile of the good scores; the false-reject rate
 *    at 0.5 is then about 1 − that quantile on these images;
 *  - with defective images: the highest t that accepts at most `maxFalseAcceptRate` of them, which
 *    is the t with the fewest false rejects under that limit (a plan's severity sets the limit).
 */
import { quantile } from './metrics.js';

export interface ThresholdCalibration {
  rule: 'good-quantile' | 'max-false-accept-rate';
  threshold: number;
  min: number;
  max: number;
  /** Share of the good calibration images at or above the threshold (flagged although good). */
  falseRejectRate: number;
  /** Share of the bad calibration images below it (accepted although defective); null without any. */
  falseAcceptRate: number | null;
}

/** Good-only rule: the threshold is this quantile of the good (cross-validated) scores. */
export const DEFAULT_GOOD_QUANTILE = 0.99;
/** With --bad: at most this share of the defective images may score below the threshold. */
export const DEFAULT_MAX_FALSE_ACCEPT_RATE = 0.05;

const share = (values: readonly number[], test: (v: number) => boolean): number => (values.length === 0 ? 0 : values.filter(test).length / values.length);

export function calibrateThreshold(
  goodScores: readonly number[],
  badScores: readonly number[] = [],
  options: { goodQuantile?: number; maxFalseAcceptRate?: number } = {},
): ThresholdCalibration {
  if (goodScores.length === 0) throw new RangeError('calibration needs good scores');
  let threshold: number;
  let rule: ThresholdCalibration['rule'];
  if (badScores.length > 0) {
    const limit = options.maxFalseAcceptRate ?? DEFAULT_MAX_FALSE_ACCEPT_RATE;
    const sorted = [...badScores].sort((a, b) => a - b);
    // Scores below t are accepted: the lowest `accepted` bad scores may be, no more.
    const accepted = Math.floor(limit * sorted.length + 1e-9);
    const spread = Math.max(...sorted, ...goodScores) - Math.min(...sorted, ...goodScores);
    if (accepted >= sorted.length) threshold = Math.max(...sorted, ...goodScores) + 1e-3 * spread + 1e-9;
    else {
      // Just below the lowest defective score that must be flagged, not on it: the graph computes
      // in float32, and a score equal to the threshold could come out a hair below it.
      const flagged = sorted[accepted] as number;
      const below = accepted > 0 ? (flagged - (sorted[accepted - 1] as number)) / 2 : Infinity;
      threshold = flagged - Math.min(below, 1e-3 * spread + 1e-9);
    }
    rule = 'max-false-accept-rate';
  } else {
    threshold = quantile([...goodScores], options.goodQuantile ?? DEFAULT_GOOD_QUANTILE);
    rule = 'good-quantile';
  }
  // min: the lowest calibration score; max = 2t − min, so normal variation [min, t] spans 0..0.5
  // and a quality plan's guard band below 0.5 keeps a usable spread (see fit.ts).
  const min = Math.min(...goodScores, ...badScores);
  let max = 2 * threshold - min;
  if (!(max > min)) max = min + Math.max(Math.abs(min), 1) * 1e-3;
  return {
    rule,
    threshold,
    min,
    max,
    falseRejectRate: share(goodScores, (s) => s >= threshold),
    falseAcceptRate: badScores.length ? share(badScores, (s) => s < threshold) : null,
  };
}

/** The published score of a raw score (what the graph outputs). */
export function normalisedScore(raw: number, c: Pick<ThresholdCalibration, 'threshold' | 'min' | 'max'>): number {
  return Math.min(1, Math.max(0, (raw - c.threshold) / (c.max - c.min) + 0.5));
}
