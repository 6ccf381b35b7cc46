import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/app/logger.js';
import { createMetrics } from '../../src/app/metrics.js';
import type { InspectionWork } from '../../src/db/inspections.js';
import type { InferenceResult, InferenceTask } from '../../src/inference/inference-thread.js';
import type { ModelRegistry } from '../../src/inference/model-registry.js';
import type { InspectionDocument } from '../../src/inspection/inspection-document.js';
import { createInspectionProcessor, type ProcessorDeps } from '../../src/inspection/process-inspection.js';
import type { Decision } from '../../src/quality/decision.js';
import type { QualityPlan } from '../../src/quality/quality-plan.js';

const plan: QualityPlan = { partNumber: 'PN', operation: null, confirmFail: false, characteristics: [{ name: 'surface', model: 'm', measure: 'anomaly_score', lsl: null, usl: 0.5, guardBand: 0.1, severity: 'critical' }] };
const document = { id: 'i-1', status: 'running', receivedAt: new Date().toISOString(), images: [{ sha256: 'a'.repeat(64), width: 10, height: 10 }] } as unknown as InspectionDocument;
const registry = new Map([['m', { manifest: { id: 'm', version: '2', sha256: 'b'.repeat(64) } }]]) as unknown as ModelRegistry;

function fakes(run: (task: InferenceTask) => Promise<InferenceResult>, work: InspectionWork | null = { document, plan }) {
  const decided: Decision[] = [];
  const deps: ProcessorDeps = {
    claimInspection: async () => work,
    recordDecision: async (_w, decision) => { decided.push(decision); return { recorded: true, document: { ...document, decidedAt: new Date().toISOString() } }; },
    pool: { run },
    registry,
    metrics: createMetrics(),
    log: createLogger('silent', {}, 2),
  };
  return { deps, decided };
}

const job = (attemptsMade = 0, attempts = 3) => ({ data: { inspectionId: 'i-1' }, attemptsMade, opts: { attempts } });
const measured = (score: number, problem?: string): InferenceResult => ({
  ok: true, views: [{ m: { anomaly_score: score } }], problems: [problem ? { m: { anomaly_score: problem } } : {}], overlays: [], preprocessMs: 1, inferenceMs: 2, runImages: 1,
});

describe('processing an inspection job', () => {
  it('runs the plan’s models and records the decision', async () => {
    const f = fakes(async (task) => { expect(task.models).toEqual(['m']); return measured(0.2); });
    expect(await createInspectionProcessor(f.deps)(job())).toBe('decided');
    expect(f.decided[0]).toMatchObject({ verdict: 'PASS', characteristics: [{ value: 0.2, result: 'pass' }] });
  });

  it('a value its model does not vouch for goes to a person, with the reason', async () => {
    const f = fakes(async () => measured(-0.64, 'anomaly_score = -0.64 is outside [0, 1]'));
    await createInspectionProcessor(f.deps)(job());
    expect(f.decided[0]).toMatchObject({ verdict: 'REVIEW', reason: expect.stringContaining('outside [0, 1]') });
  });

  it('an image no model can use is decided REVIEW at once, with the reason', async () => {
    const f = fakes(async () => ({ ok: false, reason: 'image 0 cannot be used: truncated' }));
    await createInspectionProcessor(f.deps)(job());
    expect(f.decided[0]).toMatchObject({ verdict: 'REVIEW', reason: 'image 0 cannot be used: truncated' });
  });

  it('a model missing from this worker’s registry: REVIEW, naming it', async () => {
    const f = fakes(async () => measured(0));
    f.deps.registry = new Map() as ModelRegistry;
    await createInspectionProcessor(f.deps)(job());
    expect(f.decided[0]).toMatchObject({ verdict: 'REVIEW', reason: 'model(s) not in the registry: m' });
  });

  it('an error is left to the queue’s retry, and decided REVIEW on the last attempt: never dropped', async () => {
    const failing = fakes(async () => { throw new Error('session lost'); });
    await expect(createInspectionProcessor(failing.deps)(job(0, 3))).rejects.toThrow('session lost');
    expect(failing.decided).toEqual([]);
    expect(await createInspectionProcessor(failing.deps)(job(2, 3))).toBe('decided');
    expect(failing.decided[0]).toMatchObject({ verdict: 'REVIEW', reason: 'evaluation failed after 3 attempts: session lost' });
  });

  it('a job for a decided or unknown inspection changes nothing', async () => {
    const decided = fakes(async () => measured(0), { document: { ...document, status: 'done' }, plan });
    expect(await createInspectionProcessor(decided.deps)(job())).toBe('already_decided');
    const unknown = fakes(async () => measured(0), null);
    expect(await createInspectionProcessor(unknown.deps)(job())).toBe('unknown_inspection');
    expect([...decided.decided, ...unknown.decided]).toEqual([]);
  });
});
