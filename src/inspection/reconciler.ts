import type { Logger } from '../app/logger.js';
import type { InspectionWork } from '../db/inspections.js';
import { undecidable, type Decision } from '../quality/decision.js';

/** What the reconciler needs of the database and the queue. */
export interface ReconcilerDeps {
  /** Inspections accepted at least `olderThanSeconds` ago and still without a verdict. */
  listUndecided(olderThanSeconds: number, limit: number): Promise<string[]>;
  /** The inspection's job in the queue: its state, why it failed, and how to remove it; null when there is none. */
  findJob(inspectionId: string): Promise<{ state: string; failedReason?: string; remove(): Promise<void> } | null>;
  enqueue(inspectionId: string): Promise<void>;
  claimInspection(id: string): Promise<InspectionWork | null>;
  recordDecision(work: InspectionWork, decision: Decision): Promise<unknown>;
  log: Logger;
}

/**
 * The safety net behind "every accepted image ends with a verdict": an inspection still undecided
 * after a while gets its job back if the queue lost it (enqueue failed, Redis lost data), and a
 * REVIEW verdict if its job failed for good (for example stalled too often).
 */
export class Reconciler {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: ReconcilerDeps, private readonly graceSeconds = 30) {}

  start(intervalMs = 15_000): void {
    this.timer = setInterval(() => void this.runOnce().catch((err) => this.deps.log.warn({ err: err.message }, 'reconciliation failed')), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async runOnce(): Promise<{ requeued: number; failed: number }> {
    const { log } = this.deps;
    let requeued = 0;
    let failed = 0;
    for (const id of await this.deps.listUndecided(this.graceSeconds, 500)) {
      const job = await this.deps.findJob(id);
      const state = job?.state ?? 'missing';
      if (state === 'missing' || state === 'unknown' || state === 'completed') {
        // completed without a stored decision cannot happen normally; re-running is safe (first decision wins).
        // A job id that is still taken would make the new job a no-op: say so; the next round tries again.
        if (job && state === 'completed') await job.remove().catch((err) => log.warn({ inspectionId: id, err: err.message }, 'cannot remove the completed job'));
        await this.deps.enqueue(id);
        requeued++;
        log.warn({ inspectionId: id, state }, 'undecided inspection had no job; enqueued again');
      } else if (state === 'failed') {
        const work = await this.deps.claimInspection(id);
        if (work && work.document.status !== 'done') {
          await this.deps.recordDecision(work, undecidable(work.plan, `processing failed: ${job?.failedReason ?? 'unknown error'}`));
          failed++;
          log.error({ inspectionId: id, reason: job?.failedReason }, 'job failed for good; decided REVIEW');
        }
      }
    }
    return { requeued, failed };
  }
}
