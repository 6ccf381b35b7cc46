// Shapes of the server's JSON (docs/openapi.yaml and the workbench brief). Only what the UI reads.

export type Role = 'reviewer' | 'engineer' | 'admin';

export interface Session {
  username: string;
  role: Role;
  name: string;
  csrfToken: string;
}

// The documents the server sends are typed where the server makes them (type-only imports: no server code is bundled).
import type { Verdict } from '../../src/quality/decision.js';
import type { LotStatistics } from '../../src/quality/lot-statistics.js';

export type { Verdict, DispositionDecision as Decision, CharacteristicResult as CharResult, EvaluatedCharacteristic as CharacteristicResult } from '../../src/quality/decision.js';
export type { InspectionDocument as Inspection, Disposition, Removed, Pinned } from '../../src/inspection/inspection-document.js';
export type Severity = import('../../src/quality/decision.js').EvaluatedCharacteristic['severity'];
export type OverlayKind = 'anomaly_map' | 'mask' | 'boxes';
export type Overlay = import('../../src/inspection/inspection-document.js').InspectionDocument['overlays'][number];
export type ImageRef = import('../../src/inspection/inspection-document.js').InspectionDocument['images'][number];

export interface Boxes {
  width: number;
  height: number;
  boxes: { label: string; confidence: number; x: number; y: number; w: number; h: number }[];
}

export type Counts = LotStatistics['counts'];

export interface LotPage {
  lotId: string;
  partNumbers: string[];
  /** On hold: none of the lot's images is removed while it lasts. */
  hold: { by: string; at: string; reason: string } | null;
  counts: Counts;
  inspections: { id: string; serial: string | null; verdict: Verdict | null; final: boolean }[];
  nextCursor: string | null;
}

export interface LotListItem {
  lotId: string;
  partNumbers: string[];
  inspections: number;
  lastReceivedAt: string | null;
}

export type { PChartPoint } from '../../src/quality/lot-statistics.js';
export type LotSummary = { lotId: string; partNumbers: string[] } & LotStatistics;

export interface ModelInfo {
  id: string;
  version: string;
  task: string;
  measures: string[];
}

export interface PlanCharacteristic {
  name: string;
  model: string;
  measure: string;
  lsl?: number | null;
  usl?: number | null;
  guardBand: number;
  severity: Severity;
}

export interface QualityPlan {
  partNumber: string;
  operation?: string | null;
  confirmFail: boolean;
  characteristics: PlanCharacteristic[];
}

export interface PlanSummary {
  partNumber: string;
  operation: string | null;
  version: number;
  createdAt: string;
  createdBy: string;
}

export interface PlanVersion extends PlanSummary {
  plan: QualityPlan;
}

export interface PlanVersionInfo {
  version: number;
  operation: string | null;
  createdAt: string;
  createdBy: string;
  reason: string | null;
}

export interface PlanDiff {
  from: number;
  to: number;
  changes: import('../../src/quality/plan-diff.js').PlanChange[];
}

export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  entity: string;
  reason: string | null;
  details: unknown;
  hash: string;
  prevHash: string | null;
}
