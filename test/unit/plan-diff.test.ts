import { describe, expect, it } from 'vitest';
import { diffPlans } from '../../src/quality/plan-diff.js';
import { qualityPlanSchema } from '../../src/quality/quality-plan.js';

const plan = (o: object) => qualityPlanSchema.parse({ partNumber: 'PN-1', characteristics: [], ...o });
const surface = { name: 'surface', model: 'm', measure: 'anomaly_score', usl: 0.5, guardBand: 0.1 };

describe('diffPlans', () => {
  it('no changes between equal plans', () => {
    expect(diffPlans(plan({ characteristics: [surface] }), plan({ characteristics: [surface] }))).toEqual([]);
  });

  it('reports changed limits, added and removed characteristics and confirmFail', () => {
    const from = plan({ characteristics: [surface, { name: 'scratch', model: 'c', measure: 'prob:scratch', usl: 0.6 }] });
    const to = plan({ confirmFail: true, characteristics: [{ ...surface, usl: 0.45, lsl: 0 }, { name: 'dent', model: 'c', measure: 'prob:dent', usl: 0.7 }] });
    expect(diffPlans(from, to)).toEqual([
      { path: 'confirmFail', kind: 'changed', from: false, to: true },
      { path: 'characteristics.surface.lsl', kind: 'changed', from: null, to: 0 },
      { path: 'characteristics.surface.usl', kind: 'changed', from: 0.5, to: 0.45 },
      { path: 'characteristics.scratch', kind: 'removed', from: expect.objectContaining({ name: 'scratch' }), to: null },
      { path: 'characteristics.dent', kind: 'added', from: null, to: expect.objectContaining({ name: 'dent' }) },
    ]);
  });

  it('a limit left out equals a limit of null', () => {
    expect(diffPlans(plan({ characteristics: [surface] }), plan({ characteristics: [{ ...surface, lsl: null }] }))).toEqual([]);
  });
});
