import { z } from 'zod';
import { didYouMean, listFew } from '../text.js';
import { describeIssues } from '../validation-issues.js';

/** Quality-plan document (CONTRACT.md "Quality plan document"): data validated here, never code. */
export const characteristicSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, '1–64 letters, digits, "_", ".", ":" or "-"'),
    model: z.string().min(1).max(128),
    measure: z.string().min(1).max(128),
    lsl: z.number().finite().nullable().optional(),
    usl: z.number().finite().nullable().optional(),
    guardBand: z.number().finite().min(0).default(0),
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
    operation: z.string().min(1).max(64).nullable().optional(),
    /** FAIL verdicts also wait for a person's confirmation before the MES acts on them as final. */
    confirmFail: z.boolean().default(false),
    characteristics: z.array(characteristicSchema).min(1),
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

export type PlanValidation = { ok: true; plan: QualityPlan } | { ok: false; problems: string[] };

/** Validates a plan document and that every characteristic names a model and measure that exist. */
export function validateQualityPlan(document: unknown, catalog: MeasureCatalog): PlanValidation {
  const parsed = qualityPlanSchema.safeParse(document);
  if (!parsed.success) {
    return { ok: false, problems: describeIssues(parsed.error, '(plan)', qualityPlanSchema) };
  }
  const problems: string[] = [];
  parsed.data.characteristics.forEach((c, i) => {
    const measures = catalog.get(c.model);
    if (!measures) problems.push(`characteristics.${i}.model: no model "${c.model}" in the registry${didYouMean(c.model, catalog.keys())}`);
    else if (!measures.includes(c.measure)) {
      problems.push(`characteristics.${i}.measure: model "${c.model}" has no measure "${c.measure}"${didYouMean(c.measure, measures)}; it yields ${listFew(measures)}`);
    }
  });
  return problems.length ? { ok: false, problems } : { ok: true, plan: normalizePlan(parsed.data) };
}

function normalizePlan(plan: QualityPlan): QualityPlan {
  return {
    ...plan,
    operation: plan.operation ?? null,
    characteristics: plan.characteristics.map((c) => ({ ...c, lsl: c.lsl ?? null, usl: c.usl ?? null })),
  };
}
