import { describe, expect, it } from 'vitest';
import { validateQualityPlan } from '../../src/quality/quality-plan.js';

const catalog = new Map([['surface-anomaly', ['anomaly_score']], ['defect-classifier', ['prob:scratch', 'top_label']]]);
const good = {
  partNumber: 'PN-1001',
  operation: 'final',
  characteristics: [
    { name: 'surface_anomaly', model: 'surface-anomaly', measure: 'anomaly_score', usl: 0.5, guardBand: 0.1, severity: 'critical' },
  ],
};

describe('validateQualityPlan', () => {
  it('accepts the contract example and fills defaults', () => {
    const r = validateQualityPlan(good, catalog);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.plan.characteristics[0]).toMatchObject({ lsl: null, usl: 0.5, guardBand: 0.1 });
  });

  it.each([
    ['not an object', 42, /expected object/i],
    ['no characteristics', { partNumber: 'P', characteristics: [] }, /characteristics/],
    ['missing partNumber', { characteristics: good.characteristics }, /partNumber/],
    ['no limits', { partNumber: 'P', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'anomaly_score' }] }, /at least one spec limit/],
    ['lsl above usl', { partNumber: 'P', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'anomaly_score', lsl: 2, usl: 1 }] }, /lsl must not exceed usl/],
    ['guard bands swallow the tolerance', { partNumber: 'P', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'anomaly_score', lsl: 0, usl: 1, guardBand: 0.5 }] }, /guard bands/],
    ['negative guard band', { partNumber: 'P', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'anomaly_score', usl: 1, guardBand: -1 }] }, /guardBand/],
    ['limit as a string', { partNumber: 'P', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'anomaly_score', usl: '0.5' }] }, /usl/],
    ['duplicate names', { partNumber: 'P', characteristics: [good.characteristics[0], good.characteristics[0]] }, /duplicate/],
    ['unknown field', { ...good, extra: 1 }, /extra/],
    ['unknown model', { partNumber: 'P', characteristics: [{ name: 'a', model: 'nope', measure: 'anomaly_score', usl: 1 }] }, /no model "nope"/],
    ['unknown measure', { partNumber: 'P', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'prob:x', usl: 1 }] }, /model "surface-anomaly" has no measure "prob:x"; it yields "anomaly_score"/],
    ['bad severity', { partNumber: 'P', characteristics: [{ ...good.characteristics[0], severity: 'huge' }] }, /severity/],
  ])('refuses %s, naming the problem', (_name, doc, problem) => {
    const r = validateQualityPlan(doc, catalog);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problems.join('\n')).toMatch(problem);
  });
});
