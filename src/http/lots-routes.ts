import express, { Router } from 'express';
import { z } from 'zod';
import { lotStatistics } from '../quality/lot-statistics.js';
import { lotReportCsv, writeLotReportPdf } from '../reports/lot-report.js';
import type { Database } from '../db/database.js';
import { findLot, listLotParts, listLots, listLotTrace } from '../db/inspections.js';
import { findLotHold, holdLot, releaseLot } from '../db/lots.js';
import { role, username } from './auth.js';
import { parseOr400 } from './errors.js';
import { int32, note, text } from '../fields.js';
import { InvalidInputError, NotFoundError } from '../errors.js';

const lotIdOf = (params: Record<string, unknown>) => parseOr400(text(128), params.lotId, 'invalid_lot_id');
const cursorSchema = z.object({ receivedAt: z.iso.datetime({ offset: true }), id: z.uuid() });

/** Lots: their inspections, statistics (counts, yield, Pareto, p-chart) and traceability reports. */
export function lotRoutes(db: Database): Router {
  const router = Router();

  router.get('/lots', role('reviewer'), async (req, res) => {
    const q = parseOr400(z.object({ limit: int32().min(1).max(500).default(50) }), req.query, 'invalid_query');
    res.json({ lots: await listLots(db, q.limit) });
  });

  router.get('/lots/:lotId', role('reviewer'), async (req, res) => {
    const q = parseOr400(z.object({ cursor: z.string().max(500).optional(), limit: int32().min(1).max(1000).default(100) }), req.query, 'invalid_query');
    let cursor = null;
    if (q.cursor) {
      try {
        cursor = cursorSchema.parse(JSON.parse(Buffer.from(q.cursor, 'base64url').toString()));
      } catch {
        throw new InvalidInputError('invalid_cursor', 'the cursor is not one this API gave out');
      }
    }
    const lot = await findLot(db, lotIdOf(req.params), cursor, q.limit);
    if (!lot) throw notFound(req.params.lotId);
    res.json(lot);
  });

  router.get('/lots/:lotId/summary', role('reviewer'), async (req, res) => {
    const lotId = lotIdOf(req.params);
    const parts = await listLotParts(db, lotId);
    if (parts.length === 0) throw notFound(lotId);
    res.json({ lotId, partNumbers: [...new Set(parts.map((p) => p.partNumber))].sort(), ...lotStatistics(parts) });
  });

  router.get('/lots/:lotId/report.csv', role('reviewer'), async (req, res) => {
    const lotId = lotIdOf(req.params);
    const parts = await listLotTrace(db, lotId);
    if (parts.length === 0) throw notFound(lotId);
    res.type('text/csv; charset=utf-8').attachment(`lot-${safeFileName(lotId)}-traceability.csv`).send(lotReportCsv(parts));
  });

  router.get('/lots/:lotId/report.pdf', role('reviewer'), async (req, res) => {
    const lotId = lotIdOf(req.params);
    const parts = await listLotTrace(db, lotId);
    if (parts.length === 0) throw notFound(lotId);
    const stats = lotStatistics(parts.map((p) => ({ partNumber: p.partNumber, receivedAt: new Date(p.receivedAt), verdict: p.status === 'done' ? p.verdict : null, characteristics: p.characteristics })));
    res.type('application/pdf').attachment(`lot-${safeFileName(lotId)}-traceability.pdf`);
    writeLotReportPdf(res, lotId, stats, parts, username(req));
  });

  // A lot on hold keeps every image of its inspections, whatever the retention policy says.
  router.post('/lots/:lotId/hold', role('engineer'), express.json({ limit: '16kb' }), async (req, res) => {
    const lotId = lotIdOf(req.params);
    const body = parseOr400(z.object({ reason: note(2000) }).strict(), req.body, 'invalid_hold');
    res.json({ lotId, hold: await holdLot(db, username(req), lotId, body.reason) });
  });

  router.post('/lots/:lotId/release', role('engineer'), express.json({ limit: '16kb' }), async (req, res) => {
    const lotId = lotIdOf(req.params);
    const body = parseOr400(z.object({ reason: note(2000).optional() }).strict(), req.body ?? {}, 'invalid_release');
    await releaseLot(db, username(req), lotId, body.reason ?? null);
    res.json({ lotId, hold: await findLotHold(db, lotId) });
  });

  return router;
}

const notFound = (lotId: unknown) => new NotFoundError('not_found', `no inspections in lot ${String(lotId)}`);
const safeFileName = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
