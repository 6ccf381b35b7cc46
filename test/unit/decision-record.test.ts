import { describe, expect, it } from 'vitest';
import { decisionRecordDifferences } from '../../src/inspection/decision-record.js';
import { verdictMessage, type InspectionDocument } from '../../src/inspection/inspection-document.js';

const decided: InspectionDocument = {
  id: '0b6f3c1e-8d7a-4c1b-9f0e-2a3b4c5d6e7f', status: 'done', verdict: 'FAIL', modelVerdict: 'FAIL', final: false, awaitingReview: true,
  reason: 'scratch_score 0.91 > 0.5', site: 'plant-1', line: 'line-a', stationId: 'cam-1', serial: 'SN-1', partNumber: 'PN-1001',
  lotId: 'LOT-1', workOrder: 'WO-7', operation: null, operator: 'olga', capturedAt: '2026-12-05T08:00:00.000Z',
  receivedAt: '2026-12-05T08:00:00.120Z', decidedAt: '2026-12-05T08:00:00.480Z',
  images: [{ sha256: 'a'.repeat(64), width: 640, height: 480, mediaType: 'image/png', exifOrientation: null, removed: null, pinned: null }],
  characteristics: [{ name: 'scratch', value: 0.91, limit: { max: 0.5 }, result: 'FAIL' } as never],
  models: [{ id: 'surface-anomaly', version: '3.0.0', sha256: 'b'.repeat(64) }],
  plan: { partNumber: 'PN-1001', operation: null, version: 2 },
  overlays: [{ view: 0, model: 'surface-anomaly', kind: 'anomaly-map', sha256: 'c'.repeat(64), removed: null }],
  disposition: null,
};
// As stored: the message goes through JSON, and the document read back has its keys in another order.
const firstMessage = JSON.parse(JSON.stringify(verdictMessage(decided, 'm-1', null)));

describe('a decided part against its first verdict message', () => {
  it('agrees when nothing changed, also after a disposition set the final verdict', () => {
    expect(decisionRecordDifferences(decided, true, firstMessage)).toEqual([]);
    const disposed: InspectionDocument = { ...decided, verdict: 'PASS', final: true, awaitingReview: false, disposition: { decision: 'accept', reason: 'ok', by: 'rita', name: 'Rita', meaning: null, at: '2026-12-05T09:00:00.000Z' } };
    expect(decisionRecordDifferences(disposed, true, firstMessage)).toEqual([]);
  });

  it('names each field that traces or decides the part and no longer agrees', () => {
    const changed: InspectionDocument = {
      ...decided, modelVerdict: 'PASS', operator: 'mallory', plan: { ...decided.plan, version: 1 },
      images: [{ ...decided.images[0]!, sha256: '0'.repeat(64) }],
      characteristics: [{ ...(decided.characteristics[0] as object), value: 0.1 } as never],
    };
    expect(decisionRecordDifferences(changed, false, firstMessage)).toEqual(['modelVerdict', 'operator', 'characteristics', 'plan', 'awaitingReview', 'images']);
  });

  it('compares only what an older message carried', () => {
    const { awaitingReview: _, ...older } = firstMessage;
    expect(decisionRecordDifferences(decided, false, older)).toEqual([]);
  });
});
