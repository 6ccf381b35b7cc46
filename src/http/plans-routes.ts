import express, { Router } from 'express';
import { z } from 'zod';
import { validateQualityPlan, type MeasureCatalog } from '../quality/quality-plan.js';
import type { Database } from '../traceability/database.js';
import { findCurrentPlan, storePlanVersion } from '../traceability/quality-plans.js';
import { role, username } from './auth.js';
import { HttpError } from './errors.js';

export function planRoutes(db: Database, catalog: MeasureCatalog): Router {
  const router = Router();

  router.put('/quality-plans/:partNumber', role('engineer'), express.json({ limit: '256kb' }), async (req, res) => {
    const partNumber = String(req.params.partNumber);
    const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? { partNumber, ...req.body } : req.body;
    if (body?.partNumber !== partNumber) throw new HttpError(400, 'invalid_plan', `the plan's partNumber "${body?.partNumber}" differs from the URL's "${partNumber}"`);
    const checked = validateQualityPlan(body, catalog);
    if (!checked.ok) throw new HttpError(400, 'invalid_plan', checked.problems.join('; '));
    const stored = await storePlanVersion(db, checked.plan, username(req));
    req.log.info({ partNumber, version: stored.version }, 'quality plan stored');
    res.status(201).location(`/v1/quality-plans/${encodeURIComponent(partNumber)}?version=${stored.version}`)
      .json({ partNumber: stored.partNumber, operation: stored.operation, version: stored.version, createdAt: stored.createdAt, plan: stored.plan });
  });

  router.get('/quality-plans/:partNumber', role('reviewer'), async (req, res) => {
    const q = z.object({ version: z.coerce.number().int().positive().optional(), operation: z.string().max(64).optional() }).safeParse(req.query);
    if (!q.success) throw new HttpError(400, 'invalid_query', q.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const stored = await findCurrentPlan(db, String(req.params.partNumber), q.data.operation ?? null, q.data.version);
    if (!stored) throw new HttpError(404, 'not_found', `no quality plan for part number "${req.params.partNumber}"${q.data.version ? ` version ${q.data.version}` : ''}`);
    res.json({ partNumber: stored.partNumber, operation: stored.operation, version: stored.version, createdAt: stored.createdAt, createdBy: stored.createdBy, plan: stored.plan });
  });

  return router;
}
