import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { claimInspection, recordDecisions, recordInspection, type InspectionWork } from '../../src/db/inspections.js';
import { createDatabase, type Database } from '../../src/db/database.js';
import { undecidable } from '../../src/quality/decision.js';
import { cliJson, createTestDatabase, fixture, testEnv } from '../support/visq.js';

/** Decisions recorded together (group commit), and the database connection surviving a server that drops it. */
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let cleanup: () => Promise<void>;
let db: Database;

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  const t = await testEnv({ databaseUrl: database.url, mqttUrl: 'mqtt://127.0.0.1:1' });
  cleanup = t.cleanup;
  await cliJson(['station', 'add', 'cam-g', '--line', 'l1'], t.env);
  await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], t.env);
  db = createDatabase(database.url, 4);
});

afterAll(async () => {
  await db?.end();
  await database?.drop();
  await cleanup?.();
});

async function newInspection(serial: string): Promise<InspectionWork> {
  const id = randomUUID();
  const sha256 = randomUUID().replaceAll('-', '').padEnd(64, '0');
  await recordInspection(db, {
    id, stationId: 'cam-g', site: 'default', line: 'l1', serial, partNumber: 'PN-1001', lotId: 'LOT-G', workOrder: null, operation: null,
    operator: null, capturedAt: new Date(), plan: { partNumber: 'PN-1001', operation: '', version: 1 },
    images: [{ sha256, mediaType: 'image/png', width: 8, height: 8, exifOrientation: null, bytes: 100, prepared: { keys: [], bytes: 0 } }],
  }, null, async () => {});
  return (await claimInspection(db, id))!;
}

describe('decisions recorded together', () => {
  it('stores every decision of a group with its message, in the group\'s order; one already decided changes nothing', async () => {
    const [a, b, c] = [await newInspection('SN-A'), await newInspection('SN-B'), await newInspection('SN-C')];
    const first = await recordDecisions(db, [{ work: a, decision: undecidable(a.plan, 'first'), models: [], overlays: [] }]);
    expect(first.map((r) => r.recorded)).toEqual([true]);

    const group = await recordDecisions(db, [b, a, c].map((work) => ({ work, decision: undecidable(work.plan, 'grouped'), models: [], overlays: [] })));
    expect(group.map((r) => r.recorded)).toEqual([true, false, true]);
    const messages = (await database.db.query('SELECT inspection_id, chain_pos FROM outbox ORDER BY seq')).rows;
    expect(messages.map((m) => m.inspection_id)).toEqual([a, b, c].map((w) => w.document.id));
    expect(messages.map((m) => Number(m.chain_pos))).toEqual([1, 2, 3]);
    const reasons = (await database.db.query('SELECT id, reason FROM inspections')).rows;
    expect(Object.fromEntries(reasons.map((r) => [r.id, r.reason]))).toEqual({ [a.document.id]: 'first', [b.document.id]: 'grouped', [c.document.id]: 'grouped' });
  });

  it('a group that cannot commit leaves nothing of itself', async () => {
    const [d, e] = [await newInspection('SN-D'), await newInspection('SN-E')];
    const unknownVerdict = { ...undecidable(e.plan, 'x'), verdict: 'MAYBE' as never };
    await expect(recordDecisions(db, [
      { work: d, decision: undecidable(d.plan, 'x'), models: [], overlays: [] },
      { work: e, decision: unknownVerdict, models: [], overlays: [] },
    ])).rejects.toThrow(/verdict/);
    const undecided = (await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE id = ANY($1) AND status = 'done'`, [[d.document.id, e.document.id]])).rows[0].n;
    expect(undecided).toBe(0);
  });
});

describe('the database connection', () => {
  it('a checked-out client whose connection the server ends does not crash the process; the pool goes on', async () => {
    const client = await db.connect();
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await database.db.query('SELECT pg_terminate_backend($1)', [pid]);
    await new Promise((r) => setTimeout(r, 300)); // the FATAL message arrives while no query runs
    await expect(client.query('SELECT 1')).rejects.toThrow();
    client.release();
    expect((await db.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});
