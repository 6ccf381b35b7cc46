import type { DispositionDecision, EvaluatedCharacteristic, Verdict } from '../quality/decision.js';

/** The inspection as the API shows it and the MES receives it (CONTRACT.md `GET /v1/inspections/{id}`). */
export interface InspectionDocument {
  id: string;
  status: 'queued' | 'running' | 'done';
  verdict: Verdict | null;
  /** The model's verdict, kept when a disposition overrides `verdict`. */
  modelVerdict: Verdict | null;
  final: boolean;
  /** Decided, waiting for a person's disposition (REVIEW, or FAIL under a plan with confirmFail). */
  awaitingReview: boolean;
  reason: string | null;
  site: string;
  line: string;
  stationId: string;
  serial: string;
  partNumber: string;
  lotId: string;
  workOrder: string | null;
  operation: string | null;
  operator: string | null;
  capturedAt: string;
  receivedAt: string;
  decidedAt: string | null;
  /**
   * Upright sizes; `exifOrientation`: the EXIF orientation applied before anything else (null: none).
   * `removed`: the retention policy removed the file (the sha256 stays); `pinned`: a person keeps it.
   */
  images: { sha256: string; width: number; height: number; mediaType: string; exifOrientation: number | null; removed: Removed | null; pinned: Pinned | null }[];
  characteristics: EvaluatedCharacteristic[];
  models: ModelUsed[];
  plan: { partNumber: string; operation: string | null; version: number };
  /** Where a model saw a defect, per image: PNGs in the image store. */
  overlays: { view: number; model: string; kind: string; sha256: string; removed: Removed | null }[];
  disposition: Disposition | null;
}

/** A file the retention policy removed: when, by which policy (`quota`, `max_age`) and why, in words a person reads. */
export interface Removed { at: string; policy: 'quota' | 'max_age'; reason: string }

/** "Keep this image": who pinned it, when and why. */
export interface Pinned { by: string; at: string; reason: string }

export interface ModelUsed { id: string; version: string; sha256: string }

/** A signed disposition: who (`by`, and the printed `name`), when (`at`) and what it means. */
export interface Disposition {
  decision: DispositionDecision;
  reason: string;
  by: string;
  name: string;
  meaning: string | null;
  at: string;
}

/** The `…/verdict` payload: the document without image sizes and the store's bookkeeping, plus message identity. */
export type VerdictMessage = Omit<InspectionDocument, 'images' | 'overlays'> & {
  images: { sha256: string }[];
  overlays: { view: number; model: string; kind: string; sha256: string }[];
  messageId: string;
  supersedes: string | null;
};

export function verdictMessage(doc: InspectionDocument, messageId: string, supersedes: string | null): VerdictMessage {
  return {
    ...doc,
    images: doc.images.map((i) => ({ sha256: i.sha256 })),
    overlays: doc.overlays.map(({ view, model, kind, sha256 }) => ({ view, model, kind, sha256 })),
    messageId,
    supersedes,
  };
}
