/**
 * Detection metrics for anomaly models. Labels: 1 (or true) = anomalous/defective, 0 = good.
 */

export type Label = number | boolean;

function splitByLabel(scores: ArrayLike<number>, labels: ArrayLike<Label>): { positives: Float64Array; negatives: Float64Array } {
  if (scores.length !== labels.length) throw new RangeError(`${scores.length} scores but ${labels.length} labels`);
  let positiveCount = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) positiveCount++;
  const positives = new Float64Array(positiveCount);
  const negatives = new Float64Array(scores.length - positiveCount);
  let p = 0;
  let n = 0;
  for (let i = 0; i < scores.length; i++) {
    const score = scores[i] as number;
    if (Number.isNaN(score)) throw new RangeError(`score ${i} is NaN`);
    if (labels[i]) positives[p++] = score;
    else negatives[n++] = score;
  }
  return { positives, negatives };
}

/**
 * Area under the ROC curve: the probability that a random anomalous sample scores higher than a
 * random good one, ties counting one half (the Mann–Whitney statistic). O(n log n), so it also
 * serves pixel-level AUROC over millions of pixels.
 */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<Label>): number {
  const { positives, negatives } = splitByLabel(scores, labels);
  if (positives.length === 0 || negatives.length === 0) {
    throw new RangeError('AUROC needs at least one anomalous and one good sample');
  }
  positives.sort();
  negatives.sort();
  let below = 0; // negatives strictly below the current positive
  let belowOrEqual = 0; // negatives at or below it
  let pairsWon = 0;
  for (const score of positives) {
    while (below < negatives.length && (negatives[below] as number) < score) below++;
    if (belowOrEqual < below) belowOrEqual = below;
    while (belowOrEqual < negatives.length && (negatives[belowOrEqual] as number) <= score) belowOrEqual++;
    pairsWon += below + 0.5 * (belowOrEqual - below);
  }
  return pairsWon / (positives.length * negatives.length);
}

export interface ConfusionCounts {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  trueNegatives: number;
}

/** Counts at a threshold: a sample is predicted anomalous when its score is ≥ the threshold. */
export function confusionAt(scores: ArrayLike<number>, labels: ArrayLike<Label>, threshold: number): ConfusionCounts {
  if (scores.length !== labels.length) throw new RangeError(`${scores.length} scores but ${labels.length} labels`);
  const counts: ConfusionCounts = { truePositives: 0, falsePositives: 0, falseNegatives: 0, trueNegatives: 0 };
  for (let i = 0; i < scores.length; i++) {
    const predicted = (scores[i] as number) >= threshold;
    if (labels[i]) predicted ? counts.truePositives++ : counts.falseNegatives++;
    else predicted ? counts.falsePositives++ : counts.trueNegatives++;
  }
  return counts;
}

/** F1 of the anomalous class at a threshold (0 when nothing is predicted or present). */
export function f1Score(scores: ArrayLike<number>, labels: ArrayLike<Label>, threshold: number): number {
  const { truePositives, falsePositives, falseNegatives } = confusionAt(scores, labels, threshold);
  const denominator = 2 * truePositives + falsePositives + falseNegatives;
  return denominator === 0 ? 0 : (2 * truePositives) / denominator;
}

/**
 * The threshold with the best F1 (anomalib's F1AdaptiveThreshold). Candidates are the midpoints
 * between neighbouring distinct scores, so the chosen threshold sits in the gap between the
 * classes rather than on a sample; on a tie the lowest wins. O(n²): meant for image-level
 * calibration sets of tens to hundreds of scores.
 */
export function bestF1Threshold(scores: ArrayLike<number>, labels: ArrayLike<Label>): { threshold: number; f1: number } {
  const distinct = [...new Set(Array.from(scores))].sort((a, b) => a - b);
  if (distinct.length === 0) throw new RangeError('no scores');
  // "Everything anomalous" first (right when every sample is anomalous or all scores are equal).
  const candidates: number[] = [distinct[0] as number];
  for (let i = 0; i + 1 < distinct.length; i++) candidates.push(((distinct[i] as number) + (distinct[i + 1] as number)) / 2);
  let best = { threshold: distinct[0] as number, f1: -1 };
  for (const threshold of candidates) {
    const f1 = f1Score(scores, labels, threshold);
    if (f1 > best.f1) best = { threshold, f1 };
  }
  return best;
}

/** Linear-interpolated quantile (q in [0, 1]) of the values, as numpy's default. */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) throw new RangeError('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile q must be in [0, 1], got ${q}`);
  const sorted = Float64Array.from(values).sort();
  const position = q * (sorted.length - 1);
  const lower = Math.floor(position);
  const upper = Math.min(lower + 1, sorted.length - 1);
  const fraction = position - lower;
  return (sorted[lower] as number) * (1 - fraction) + (sorted[upper] as number) * fraction;
}
