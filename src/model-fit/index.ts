/** Fitting and measuring anomaly models for the registry, in Node (no Python, no GPU). */
export { fitAnomalyModel, ModelFitError, type FitAnomalyModelOptions, type FitAnomalyModelResult, type FitProgress } from './fit.js';
export { evaluateAnomalyModel, measureLatency, readManifest, recordMetrics, type EvaluationResult, type LatencyResult, type ScoredImage } from './evaluate.js';
export { auroc, bestF1Threshold, confusionAt, f1Score, quantile } from './metrics.js';
export { loadImageTensor, loadMaskLabels, type ImageTensor } from './preprocess.js';
