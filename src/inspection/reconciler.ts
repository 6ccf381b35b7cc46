import type { Queue } from 'bullmq';
import type { Logger } from '../app/logger.js';
import { undecidable } from '../quality/decision.js';
import type { Database } from '../db/database.js';
import { claimInspection, listUndecided, recordDecision } from '../db/inspections.js';
import { enqueueInspection, type InspectionJobData } from '../queue/inspection-queue.js';

/**
 * The safety net behind "every accepted image ends with a verdict": an inspection still undecided
 * after a while gets its job back if the queue lost it (enqueue failed, Redis lost data), and a
 * REVIEW verdict if its job failed for good (for example stalled too often).
 */
export class Reconciler {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Database,
    private readonly queue: Queue<InspectionJobData>,
    private readonly log: Logger,
    private readonly graceSeconds = 30,
  ) {}

  start(intervalMs = 15_000): void {
    this.timer = setInterval(() => void this.runOnce().catch((err) => this.log.warn({ err: err.message }, 'reconciliation failed')), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async runOnce(): Promise<{ requeued: number; failed: number }> {
    let requeued = 0;
    let failed = 0;
    for (const id of await listUndecided(this.db, this.graceSeconds, 500)) {
      const job = await this.queue.getJob(id);
      const state = job ? await job.getState() : 'missing';
      if (state === 'missing' || state === 'unknown' || state === 'completed') {
        // completed without a stored decision cannot happen normally; re-running is safe (first decision wins).
        if (job && state === 'completed') await job.remove().catch(() => {});
        await enqueueInspection(this.queue, id);
        requeued++;
        this.log.warn({ inspectionId: id, state }, 'undecided inspection had no job; enqueued again');
      } else if (state === 'failed') {
        const work = await claimInspection(this.db, id);
        if (work && work.document.status !== 'done') {
          await recordDecision(this.db, work, undecidable(work.plan, `processing failed: ${job?.failedReason ?? 'unknown error'}`), [], []);
          failed++;
          this.log.error({ inspectionId: id, reason: job?.failedReason }, 'job failed for good; decided REVIEW');
        }
      }
    }
    return { requeued, failed };
  }
}
