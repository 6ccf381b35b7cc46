import { Router } from 'express';
import { z } from 'zod';
import { listAuditEntries } from '../db/audit-trail.js';
import type { Database } from '../db/database.js';
import { role } from './auth.js';
import { parseOr400 } from './errors.js';
import { int32 } from '../fields.js';

export function auditRoutes(db: Database): Router {
  const router = Router();
  router.get('/audit', role('engineer'), async (req, res) => {
    const q = parseOr400(z.object({ before: int32().positive().optional(), limit: int32().min(1).max(1000).default(100) }), req.query, 'invalid_query');
    res.json({ entries: await listAuditEntries(db, q.before ?? null, q.limit) });
  });
  return router;
}
