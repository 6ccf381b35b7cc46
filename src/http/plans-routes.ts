import express, { Router } from 'express';
import { z } from 'zod';
import { diffPlans } from '../quality/plan-diff.js';
import { validateQualityPlan } from '../quality/quality-plan.js';
import type { Database } from '../db/database.js';
import { findCurrentPlan, listCurrentPlans, listPlanVersions, storePlanVersion } from '../db/quality-plans.js';
import { int32, note, text } from '../fields.js';
import { role, username } from './auth.js';
import { parseOr400 } from './errors.js';
import { InvalidInputError, NotFoundError } from '../errors.js';

/** What the registry's models yield, for plan validation and the plan editor. */
export interface ModelSummary { id: string; version: string; task: string; measures: readonly string[] }

const operationQuery = z.object({ operation: text(64).optional() });
const partNumberOf = (params: Record<string, unknown>) => parseOr400(text(64), params.partNumber, 'invalid_part_number');

export function planRoutes(db: Database, models: readonly ModelSummary[]): Router {
  const router = Router();
  const catalog = new Map(models.map((m) => [m.id, m.measures]));

  router.get('/models', role('reviewer'), (_req, res) => {
    res.json({ models });
  });

  router.get('/quality-plans', role('reviewer'), async (_req, res) => {
    res.json({ plans: await listCurrentPlans(db) });
  });

  router.put('/quality-plans/:partNumber', role('engineer'), express.json({ limit: '256kb' }), async (req, res) => {
    const partNumber = partNumberOf(req.params);
    const { reason } = parseOr400(z.object({ reason: note(2000).optional() }), req.query, 'invalid_query');
    const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? { partNumber, ...req.body } : req.body;
    if (body?.partNumber !== partNumber) throw new InvalidInputError('invalid_plan', `the plan's partNumber "${body?.partNumber}" differs from the URL's "${partNumber}"`);
    const checked = validateQualityPlan(body, catalog);
    if (!checked.ok) throw new InvalidInputError('invalid_plan', checked.problems.join('; '));
    const stored = await storePlanVersion(db, checked.plan, username(req), reason ?? null);
    req.log.info({ partNumber, version: stored.version }, 'quality plan stored');
    res.status(201).location(`/v1/quality-plans/${encodeURIComponent(partNumber)}?version=${stored.version}`).json(stored);
  });

  router.get('/quality-plans/:partNumber', role('reviewer'), async (req, res) => {
    const q = parseOr400(operationQuery.extend({ version: int32().positive().optional() }), req.query, 'invalid_query');
    const stored = await findCurrentPlan(db, partNumberOf(req.params), q.operation ?? null, q.version);
    if (!stored) throw new NotFoundError('not_found', `no quality plan for part number "${req.params.partNumber}"${q.version ? ` version ${q.version}` : ''}`);
    res.json(stored);
  });

  router.get('/quality-plans/:partNumber/versions', role('reviewer'), async (req, res) => {
    const q = parseOr400(operationQuery, req.query, 'invalid_query');
    const versions = await listPlanVersions(db, partNumberOf(req.params), q.operation ?? null);
    if (versions.length === 0) throw new NotFoundError('not_found', `no quality plan for part number "${req.params.partNumber}"`);
    res.json({ versions });
  });

  router.get('/quality-plans/:partNumber/diff', role('reviewer'), async (req, res) => {
    const q = parseOr400(operationQuery.extend({ from: int32().positive(), to: int32().positive() }), req.query, 'invalid_query');
    const partNumber = partNumberOf(req.params);
    const [from, to] = await Promise.all([q.from, q.to].map((v) => findCurrentPlan(db, partNumber, q.operation ?? null, v)));
    if (!from || !to) throw new NotFoundError('not_found', `part number "${partNumber}" has no plan version ${!from ? q.from : q.to}`);
    res.json({ from: q.from, to: q.to, changes: diffPlans(from.plan, to.plan) });
  });

  return router;
}
