import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/app/logger.js';
import type { InspectionWork } from '../../src/db/inspections.js';
import { Reconciler, type ReconcilerDeps } from '../../src/inspection/reconciler.js';
import type { Decision } from '../../src/quality/decision.js';

const plan = { partNumber: 'PN', operation: null, confirmFail: false, characteristics: [{ name: 'c', model: 'm', measure: 'x', lsl: null, usl: 1, guardBand: 0, severity: 'major' as const }] };
const work = (id: string): InspectionWork => ({ document: { id, status: 'running' } as InspectionWork['document'], plan });

function fakes(jobs: Record<string, { state: string; failedReason?: string } | null>) {
  const enqueued: string[] = [];
  const removed: string[] = [];
  const decided: [string, Decision][] = [];
  const deps: ReconcilerDeps = {
    listUndecided: async () => Object.keys(jobs),
    findJob: async (id) => (jobs[id] ? { ...jobs[id]!, remove: async () => { removed.push(id); } } : null),
    enqueue: async (id) => { enqueued.push(id); },
    claimInspection: async (id) => work(id),
    recordDecision: async (w, d) => { decided.push([w.document.id, d]); },
    log: createLogger('silent', {}, 2),
  };
  return { deps, enqueued, removed, decided };
}

describe('the reconciler: every accepted image ends with a verdict', () => {
  it('queues again an undecided inspection whose job is gone (or finished without a decision)', async () => {
    const f = fakes({ lost: null, odd: { state: 'completed' }, waiting: { state: 'waiting' }, busy: { state: 'active' } });
    expect(await new Reconciler(f.deps).runOnce()).toEqual({ requeued: 2, failed: 0 });
    expect(f.enqueued).toEqual(['lost', 'odd']);
    expect(f.removed).toEqual(['odd']);
    expect(f.decided).toEqual([]);
  });

  it('decides REVIEW, with the reason, an inspection whose job failed for good', async () => {
    const f = fakes({ broken: { state: 'failed', failedReason: 'job stalled more than allowable limit' } });
    expect(await new Reconciler(f.deps).runOnce()).toEqual({ requeued: 0, failed: 1 });
    expect(f.decided[0]![1]).toMatchObject({ verdict: 'REVIEW', reason: 'processing failed: job stalled more than allowable limit' });
  });
});
