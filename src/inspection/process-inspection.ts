import type { Logger } from '../app/logger.js';
import type { Metrics } from '../app/metrics.js';
import { decide, undecidable, type Decision, type ViewMeasures, type ViewProblems } from '../quality/decision.js';
import type { QualityPlan } from '../quality/quality-plan.js';
import type { InspectionDocument, ModelUsed } from './inspection-document.js';
import type { InspectionWork, Overlay } from '../db/inspections.js';
import type { InferencePool } from '../inference/inference-pool.js';
import type { ModelRegistry } from '../inference/model-registry.js';

/** A queue job as the processor sees it: which inspection, and which attempt of how many. */
export interface InspectionJobView { data: { inspectionId: string }; attemptsMade: number; opts: { attempts?: number } }

export interface ProcessorDeps {
  /** Marks the inspection running (unless decided) and returns it with its plan; null when it does not exist. */
  claimInspection(id: string): Promise<InspectionWork | null>;
  /** Stores the decision and its verdict message; `recorded` is false when the inspection was decided already. */
  recordDecision(work: InspectionWork, decision: Decision, models: ModelUsed[], overlays: Overlay[]): Promise<{ recorded: boolean; document: InspectionDocument }>;
  pool: Pick<InferencePool, 'run'>;
  registry: ModelRegistry;
  metrics: Metrics;
  log: Logger;
}

export type ProcessOutcome = 'decided' | 'already_decided' | 'unknown_inspection';

/**
 * One inspection job: run the plan's models on its images, decide, store verdict and message.
 * Expected outcomes are values; a thrown error goes to the queue's retry, and on the last attempt
 * the inspection is decided REVIEW with the error as reason, so no accepted image is left without a verdict.
 */
export function createInspectionProcessor(deps: ProcessorDeps) {
  return async (job: InspectionJobView): Promise<ProcessOutcome> => {
    const id = job.data.inspectionId;
    const log = deps.log.child({ inspectionId: id, jobAttempt: job.attemptsMade + 1 });
    const work = await deps.claimInspection(id);
    if (!work) {
      log.error('job for an inspection that does not exist');
      return 'unknown_inspection';
    }
    if (work.document.status === 'done') return 'already_decided';

    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    let decision: Decision;
    let models: ModelUsed[] = [];
    let overlays: Overlay[] = [];
    try {
      ({ decision, models, overlays } = await evaluate(deps, work.plan, work.document.images.map(({ sha256, width, height }) => ({ sha256, width, height }))));
    } catch (err) {
      if (!lastAttempt) {
        log.warn({ err }, 'inspection failed; the queue will retry it');
        throw err;
      }
      log.error({ err }, 'inspection failed on its last attempt; deciding REVIEW');
      decision = undecidable(work.plan, `evaluation failed after ${job.attemptsMade + 1} attempts: ${(err as Error).message}`);
    }
    return finish(deps, log, work, decision, models, overlays);
  };
}

async function evaluate(deps: ProcessorDeps, plan: QualityPlan, images: { sha256: string; width: number; height: number }[]) {
  const modelIds = [...new Set(plan.characteristics.map((c) => c.model))];
  const missing = modelIds.filter((m) => !deps.registry.has(m));
  const models: ModelUsed[] = modelIds.filter((m) => deps.registry.has(m)).map((m) => {
    const { manifest } = deps.registry.get(m)!;
    return { id: manifest.id, version: manifest.version, sha256: manifest.sha256 };
  });
  if (missing.length) {
    // A plan naming a model this worker does not have cannot be evaluated anywhere with this registry.
    return { decision: undecidable(plan, `model(s) not in the registry: ${missing.join(', ')}`), models, overlays: [] };
  }
  const result = await deps.pool.run({ images, models: modelIds });
  if (!result.ok) return { decision: undecidable(plan, result.reason), models, overlays: [] };
  deps.metrics.preprocessing.observe(result.preprocessMs / 1000);
  deps.metrics.inference.observe(result.inferenceMs / 1000);
  deps.metrics.batchImages.observe(result.runImages);
  const nested = <T>(v: Record<string, Record<string, T>>) => new Map(Object.entries(v).map(([model, m]) => [model, new Map(Object.entries(m))]));
  const views: ViewMeasures[] = result.views.map(nested);
  const problems: ViewProblems[] = result.problems.map(nested);
  return { decision: decide(plan, views, problems), models, overlays: result.overlays };
}

async function finish(deps: ProcessorDeps, log: Logger, work: InspectionWork, decision: Decision, models: ModelUsed[], overlays: Overlay[]): Promise<ProcessOutcome> {
  const { recorded, document } = await deps.recordDecision(work, decision, models, overlays);
  if (!recorded) return 'already_decided';
  deps.metrics.verdicts.inc({ verdict: decision.verdict });
  deps.metrics.decisionLatency.observe((Date.parse(document.decidedAt!) - Date.parse(document.receivedAt)) / 1000);
  log.info({ verdict: decision.verdict, reason: decision.reason }, 'inspection decided');
  return 'decided';
}
