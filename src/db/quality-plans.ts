import type { QualityPlan } from '../quality/quality-plan.js';
import { appendAudit, planEntity } from './audit-trail.js';
import { inTransaction, type Database, type Queryable } from './database.js';


export interface PlanVersion { partNumber: string; operation: string | null; version: number; createdAt: string; createdBy: string | null; reason: string | null }
export interface StoredPlan extends PlanVersion { plan: QualityPlan }

/** Stores a validated plan as the next version of its part number (and operation), with its audit entry. */
export async function storePlanVersion(db: Database, plan: QualityPlan, createdBy: string, reason: string | null): Promise<StoredPlan> {
  const operation = plan.operation ?? '';
  return inTransaction(db, async (c) => {
    // Serialises concurrent applies of the same plan so versions stay gap-free and unique.
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`plan:${plan.partNumber}:${operation}`]);
    const r = await c.query<{ version: number; created_at: Date }>(
      `INSERT INTO quality_plans (part_number, operation, version, document, created_by, reason)
       SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5 FROM quality_plans WHERE part_number = $1 AND operation = $2
       RETURNING version, created_at`,
      [plan.partNumber, operation, JSON.stringify(plan), createdBy, reason],
    );
    // INSERT … SELECT with an aggregate always gives one row.
    const { version, created_at: createdAt } = r.rows[0]!;
    await appendAudit(c, { actor: createdBy, action: 'plan.version', entity: planEntity(plan.partNumber, plan.operation ?? null, version), reason, details: { plan } });
    return { partNumber: plan.partNumber, operation: plan.operation ?? null, version, plan, createdAt: createdAt.toISOString(), createdBy, reason };
  });
}

/**
 * The plan an inspection of this part and operation uses: the newest version of the plan for
 * that operation, else of the part's plan for any operation. With `version`: exactly that
 * version of the plan for exactly that operation (null: the plan for any operation).
 */
export async function findCurrentPlan(db: Queryable, partNumber: string, operation: string | null, version?: number): Promise<StoredPlan | null> {
  const r = await db.query<PlanRow & { document: QualityPlan }>({
    name: 'find-current-plan',
    text: `SELECT part_number, operation, version, document, created_at, created_by, reason FROM quality_plans
     WHERE part_number = $1
       -- A given version names one plan exactly; without one, a plan for any operation may stand in.
       AND CASE WHEN $3::int IS NULL THEN operation IN ($2, '') ELSE operation = $2 AND version = $3 END
     ORDER BY (operation = $2) DESC, version DESC LIMIT 1`,
    values: [partNumber, operation ?? '', version ?? null],
  });
  const row = r.rows[0];
  return row ? { ...toVersion(row), plan: row.document } : null;
}

interface PlanRow { part_number: string; operation: string; version: number; created_at: Date; created_by: string | null; reason: string | null }

const toVersion = (row: PlanRow): PlanVersion => ({
  partNumber: row.part_number, operation: row.operation || null, version: row.version,
  createdAt: row.created_at.toISOString(), createdBy: row.created_by, reason: row.reason,
});

/** The current version of every plan. */
export async function listCurrentPlans(db: Queryable): Promise<PlanVersion[]> {
  const r = await db.query<PlanRow>(
    `SELECT DISTINCT ON (part_number, operation) part_number, operation, version, created_at, created_by, reason
     FROM quality_plans ORDER BY part_number, operation, version DESC`);
  return r.rows.map(toVersion);
}

/** Every version of one part number's plan (for an operation, or for any operation), newest first. */
export async function listPlanVersions(db: Queryable, partNumber: string, operation: string | null): Promise<PlanVersion[]> {
  const r = await db.query<PlanRow>(
    `SELECT part_number, operation, version, created_at, created_by, reason FROM quality_plans
     WHERE part_number = $1 AND operation = $2 ORDER BY version DESC`,
    [partNumber, operation ?? '']);
  return r.rows.map(toVersion);
}
