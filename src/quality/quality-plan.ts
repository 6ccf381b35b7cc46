import { z } from 'zod';
import { text } from '../fields.js';
import { didYouMean, listFew } from '../text.js';
import { describeIssues } from '../validation-issues.js';

/** Quality-plan document (CONTRACT.md "Quality plan document"): data validated here, never code. */
export const characteristicSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, '1–64 letters, digits, "_", ".", ":" or "-"'),
    model: z.string().min(1, 'choose a model').max(128),
    measure: z.string().min(1, 'choose a measure').max(128),
    lsl: z.number({ error: 'not a number' }).finite('not a finite number').nullable().optional(),
    usl: z.number({ error: 'not a number' }).finite('not a finite number').nullable().optional(),
    guardBand: z.number({ error: 'not a number' }).finite('not a finite number').min(0, 'must be 0 or more').default(0),
    severity: z.enum(['critical', 'major', 'minor']).default('major'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const lsl = c.lsl ?? null;
    const usl = c.usl ?? null;
    if (lsl === null && usl === null) {
      ctx.addIssue({ code: 'custom', message: 'needs at least one spec limit (lsl or usl)' });
    }
    if (lsl !== null && usl !== null) {
      if (lsl > usl) ctx.addIssue({ code: 'custom', path: ['lsl'], message: 'lsl must not exceed usl' });
      else if (2 * c.guardBand >= usl - lsl && c.guardBand > 0) {
        ctx.addIssue({ code: 'custom', path: ['guardBand'], message: 'guard bands cover the whole tolerance: no value could pass' });
      }
    }
  });

export const qualityPlanSchema = z
  .object({
    partNumber: z.string().regex(/^[A-Za-z0-9_.:/-]{1,64}$/, '1–64 letters, digits or "_.:/-"'),
    operation: text(64).nullable().optional(),
    /** FAIL verdicts also wait for a person's confirmation before the MES acts on them as final. */
    confirmFail: z.boolean().default(false),
    characteristics: z.array(characteristicSchema).min(1, 'a plan needs at least one characteristic'),
  })
  .strict()
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.characteristics.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['characteristics', i, 'name'], message: `duplicate characteristic "${c.name}"` });
      seen.add(c.name);
    });
  });

export type QualityPlanInput = z.input<typeof qualityPlanSchema>;
export type QualityPlan = z.output<typeof qualityPlanSchema>;
export type Characteristic = QualityPlan['characteristics'][number];

/** What the model registry offers, so a plan can be checked against it before it is stored. */
export type MeasureCatalog = ReadonlyMap<string, readonly string[]>;

/** One problem with a plan, at the path of the field it concerns (the plan editor shows it there). */
export interface PlanIssue { path: (string | number)[]; message: string }

export type PlanValidation = { ok: true; plan: QualityPlan } | { ok: false; problems: string[]; issues: PlanIssue[] };

/**
 * Validates a plan document and that every characteristic names a model and measure that exist.
 * The server and the workbench's plan editor both use this, so they never disagree.
 */
export function validateQualityPlan(document: unknown, catalog: MeasureCatalog): PlanValidation {
  const parsed = qualityPlanSchema.safeParse(document);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.map((p) => (typeof p === 'number' ? p : String(p))), message: i.message }));
    return { ok: false, problems: describeIssues(parsed.error, '(plan)', qualityPlanSchema), issues };
  }
  const issues: PlanIssue[] = [];
  parsed.data.characteristics.forEach((c, i) => {
    const measures = catalog.get(c.model);
    if (!measures) issues.push({ path: ['characteristics', i, 'model'], message: `no model "${c.model}" in the registry${didYouMean(c.model, catalog.keys())}` });
    else if (!measures.includes(c.measure)) {
      issues.push({ path: ['characteristics', i, 'measure'], message: `model "${c.model}" has no measure "${c.measure}"${didYouMean(c.measure, measures)}; it yields ${listFew(measures)}` });
    }
  });
  return issues.length
    ? { ok: false, problems: issues.map((i) => `${i.path.join('.')}: ${i.message}`), issues }
    : { ok: true, plan: normalizePlan(parsed.data) };
}

function normalizePlan(plan: QualityPlan): QualityPlan {
  return {
    ...plan,
    operation: plan.operation ?? null,
    characteristics: plan.characteristics.map((c) => ({ ...c, lsl: c.lsl ?? null, usl: c.usl ?? null })),
  };
}
