import type pg from 'pg';
import type { QualityPlan } from '../quality/quality-plan.js';
import { inTransaction, type Database } from './database.js';

type Queryable = pg.Pool | pg.PoolClient;

export interface StoredPlan { partNumber: string; operation: string | null; version: number; plan: QualityPlan; createdAt: string; createdBy: string | null }

/** Stores a validated plan as the next version of its part number (and operation). */
export async function storePlanVersion(db: Database, plan: QualityPlan, createdBy: string | null): Promise<StoredPlan> {
  const operation = plan.operation ?? '';
  return inTransaction(db, async (c) => {
    // Serialises concurrent applies of the same plan so versions stay gap-free and unique.
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`plan:${plan.partNumber}:${operation}`]);
    const r = await c.query(
      `INSERT INTO quality_plans (part_number, operation, version, document, created_by)
       SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4 FROM quality_plans WHERE part_number = $1 AND operation = $2
       RETURNING version, created_at`,
      [plan.partNumber, operation, JSON.stringify(plan), createdBy],
    );
    return { partNumber: plan.partNumber, operation: plan.operation ?? null, version: r.rows[0].version, plan, createdAt: r.rows[0].created_at.toISOString(), createdBy };
  });
}

/**
 * The plan an inspection of this part and operation uses: the newest version of the plan for
 * that operation, else of the part's plan for any operation.
 */
export async function findCurrentPlan(db: Queryable, partNumber: string, operation: string | null, version?: number): Promise<StoredPlan | null> {
  const r = await db.query(
    `SELECT part_number, operation, version, document, created_at, created_by FROM quality_plans
     WHERE part_number = $1 AND operation IN ($2, '') AND ($3::int IS NULL OR version = $3)
     ORDER BY (operation = $2) DESC, version DESC LIMIT 1`,
    [partNumber, operation ?? '', version ?? null],
  );
  const row = r.rows[0];
  return row
    ? { partNumber: row.part_number, operation: row.operation || null, version: row.version, plan: row.document, createdAt: row.created_at.toISOString(), createdBy: row.created_by }
    : null;
}
