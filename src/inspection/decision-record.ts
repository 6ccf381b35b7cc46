import { isDeepStrictEqual } from 'node:util';
import type { InspectionDocument } from './inspection-document.js';

/**
 * A decided part's first verdict message is its decision record: what traced and decided the part,
 * as the MES received it. The stored inspection must still say the same. (`verdict` is left out: a
 * disposition later sets the final verdict, in a message of its own that supersedes the first.)
 */
const recordedFields = [
  'modelVerdict', 'reason', 'site', 'line', 'stationId', 'serial', 'partNumber', 'lotId', 'workOrder',
  'operation', 'operator', 'capturedAt', 'receivedAt', 'decidedAt', 'characteristics', 'models', 'plan',
] as const;

/**
 * The fields in which the stored inspection no longer agrees with its first verdict message.
 * `needsReview`: whether the decision sent the part to a person (the message's `awaitingReview`;
 * the document's own turns false once a disposition is signed). Fields a message of an older
 * version did not carry are not compared.
 */
export function decisionRecordDifferences(stored: InspectionDocument, needsReview: boolean, firstMessage: Record<string, unknown>): string[] {
  const now: Record<string, unknown> = {
    ...Object.fromEntries(recordedFields.map((f) => [f, stored[f]])),
    awaitingReview: needsReview,
    images: stored.images.map((i) => ({ sha256: i.sha256 })),
    overlays: stored.overlays.map(({ view, model, kind, sha256 }) => ({ view, model, kind, sha256 })),
  };
  const sent = firstMessage.overlays === undefined ? firstMessage : {
    ...firstMessage,
    overlays: (firstMessage.overlays as InspectionDocument['overlays']).map(({ view, model, kind, sha256 }) => ({ view, model, kind, sha256 })),
  };
  return Object.keys(now).filter((f) => f in sent && !isDeepStrictEqual(now[f], sent[f]));
}
