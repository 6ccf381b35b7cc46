import type { QualityPlan } from './quality-plan.js';

export interface PlanChange {
  /** `confirmFail`, or `characteristics.<name>` / `characteristics.<name>.<field>`. */
  path: string;
  kind: 'added' | 'removed' | 'changed';
  from: unknown;
  to: unknown;
}

const characteristicFields = ['model', 'measure', 'lsl', 'usl', 'guardBand', 'severity'] as const;

/** What changed from one plan version to another; characteristics are matched by name. */
export function diffPlans(from: QualityPlan, to: QualityPlan): PlanChange[] {
  const changes: PlanChange[] = [];
  if (from.confirmFail !== to.confirmFail) changes.push({ path: 'confirmFail', kind: 'changed', from: from.confirmFail, to: to.confirmFail });
  const before = new Map(from.characteristics.map((c) => [c.name, c]));
  const after = new Map(to.characteristics.map((c) => [c.name, c]));
  for (const [name, old] of before) {
    const now = after.get(name);
    if (!now) {
      changes.push({ path: `characteristics.${name}`, kind: 'removed', from: old, to: null });
      continue;
    }
    for (const field of characteristicFields) {
      // A limit left out and a limit of null both mean "unbounded".
      const a = old[field] ?? null;
      const b = now[field] ?? null;
      if (a !== b) changes.push({ path: `characteristics.${name}.${field}`, kind: 'changed', from: a, to: b });
    }
  }
  for (const [name, now] of after) {
    if (!before.has(name)) changes.push({ path: `characteristics.${name}`, kind: 'added', from: null, to: now });
  }
  return changes;
}
