import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { assertApiResponse, assertVerdictMessage } from '../support/contract.js';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, MesClient, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * Production style: `visq api` and `visq worker` as separate processes on Redis, PostgreSQL and
 * Mosquitto; a real HTTP client as the camera and a real MQTT client as the MES.
 */
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** The secret part of `visq_<16 hex id>_<secret>` (the secret itself may contain "_"). */
const secretOf = (bearer: string) => bearer.slice('visq_'.length + 16 + 1);
const images = (dir: string) => readdirSync(fixture('images', 'machined-surface', dir)).filter((f) => f.endsWith('.png')).sort()
  .map((f) => readFileSync(fixture('images', 'machined-surface', dir, f)));
const good = images('good');
const defect = (name: string) => images(`bad/${name}`);
const model = JSON.parse(readFileSync(fixture('..', 'models', 'surface-anomaly', 'model.json'), 'utf8'));

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let api: VisqProcess;
let worker: VisqProcess;
let mes: MesClient;
let apiKey: string;
let reviewer: string;
let engineer: string;
let prefix: string;

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl') }));
  prefix = `${env.VISQ_TOPIC_PREFIX}/site1`;
  expect((await cli(['migrate'], env)).code).toBe(0);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-1', '--line', 'line-a'], env));
  ({ token: reviewer } = await cliJson(['user', 'add', 'rita', '--role', 'reviewer', '--integration'], env));
  ({ token: engineer } = await cliJson(['user', 'add', 'emil', '--role', 'engineer'], env));
  expect(await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], env)).toEqual({ partNumber: 'PN-1001', operation: null, version: 1 });
  mes = await MesClient.connect(inject('mqttUrl'), [`${env.VISQ_TOPIC_PREFIX}/#`]);
  worker = await startVisq('worker', env);
  api = await startVisq('api', env);
});

afterAll(async () => {
  await api?.stop();
  await worker?.stop();
  await mes?.end();
  await database?.drop();
  await cleanup?.();
});

const verdictFor = async (id: string, final = false) => {
  await until(() => mes.verdicts().some((v) => v.id === id && v.final === final), `the ${final ? 'final ' : ''}verdict of ${id}`, 30_000);
  return mes.verdicts().find((v) => v.id === id && v.final === final);
};

describe('camera → MES', () => {
  it('registers stations and people with keys shown once and stored only as hashes', async () => {
    const row = (await database.db.query('SELECT key_hash FROM stations WHERE station_id = $1', ['cam-1'])).rows[0];
    expect(apiKey).toMatch(/^visq_[0-9a-f]{16}_/);
    expect(secretOf(apiKey)).toHaveLength(43);
    expect(row.key_hash.toString('hex')).not.toContain(secretOf(apiKey));
    const dump = JSON.stringify((await database.db.query('SELECT * FROM stations, users')).rows);
    expect(dump).not.toContain(secretOf(apiKey));
    expect(dump).not.toContain(secretOf(reviewer));
  });

  it('a multipart upload becomes a verdict on MQTT with full traceability', async () => {
    const img = good[0]!;
    // An hour ago, in the camera's own time zone.
    const captured = new Date(Date.now() - 3600_000);
    const local = new Date(captured.getTime() + 3600_000).toISOString().replace('Z', '+01:00');
    const res = await postImage(api.baseUrl, apiKey, [{ bytes: img }], { serial: 'SN-1', partNumber: 'PN-1001', lotId: 'LOT-1', workOrder: 'WO-9', operator: 'anna', capturedAt: local });
    expect(res.status).toBe(202);
    assertApiResponse('/v1/inspections', 'post', 202, res.body);
    expect(res.headers.get('location')).toBe(`/v1/inspections/${res.body.id}`);

    const v = await verdictFor(res.body.id);
    assertVerdictMessage(v);
    expect(v).toMatchObject({
      id: res.body.id, status: 'done', verdict: 'PASS', final: false, reason: null, supersedes: null,
      site: 'site1', line: 'line-a', stationId: 'cam-1', serial: 'SN-1', partNumber: 'PN-1001', lotId: 'LOT-1', workOrder: 'WO-9',
      operation: null, operator: 'anna', capturedAt: captured.toISOString(),
      images: [{ sha256: sha256(img) }],
      models: [{ id: 'surface-anomaly', version: model.version, sha256: model.sha256 }],
      plan: { partNumber: 'PN-1001', operation: null, version: 1 },
      disposition: null,
    });
    expect(v.characteristics).toEqual([expect.objectContaining({ name: 'surface_anomaly', usl: 0.5, lsl: null, guardBand: 0.1, result: 'pass' })]);
    expect(v.characteristics[0].value).toBeLessThan(0.4);
    expect(v.overlays).toEqual([expect.objectContaining({ view: 0, model: 'surface-anomaly', kind: 'anomaly_map' })]);
    const topic = mes.messages.find((m) => m.payload?.messageId === v.messageId)!.topic;
    expect(topic).toBe(`${prefix}/line-a/cam-1/verdict`);

    const doc = await getJson(`${api.baseUrl}/v1/inspections/${res.body.id}`, reviewer);
    expect(doc.status).toBe(200);
    assertApiResponse('/v1/inspections/{id}', 'get', 200, doc.body);
    expect(doc.body).toMatchObject({ verdict: 'PASS', images: [{ sha256: sha256(img), width: expect.any(Number), height: expect.any(Number) }] });

    // The stored image and its anomaly map are served to people, byte for byte.
    const stored = await fetch(`${api.baseUrl}/v1/images/${sha256(img)}`, { headers: { authorization: `Bearer ${reviewer}` } });
    expect(Buffer.from(await stored.arrayBuffer()).equals(img)).toBe(true);
    const map = await fetch(`${api.baseUrl}/v1/images/${v.overlays[0].sha256}`, { headers: { authorization: `Bearer ${reviewer}` } });
    expect(map.headers.get('content-type')).toBe('image/png');
  });

  it('a defective part does not pass', async () => {
    const res = await postImage(api.baseUrl, apiKey, [{ bytes: defect('scratch')[0]! }], { serial: 'SN-2', partNumber: 'PN-1001', lotId: 'LOT-1' });
    expect(res.status).toBe(202);
    const v = await verdictFor(res.body.id);
    expect(v.verdict).not.toBe('PASS');
    expect(v.characteristics[0].value).toBeGreaterThan(0.4);
  });

  it('several images of one part are one inspection; the worst view decides', async () => {
    const res = await postImage(api.baseUrl, apiKey, [{ bytes: good[1]! }, { bytes: defect('stain')[0]! }], { serial: 'SN-3', partNumber: 'PN-1001', lotId: 'LOT-1' });
    expect(res.status).toBe(202);
    const v = await verdictFor(res.body.id);
    expect(v.images).toHaveLength(2);
    expect(v.characteristics[0].view).toBe(1);
    expect(v.verdict).not.toBe('PASS');
  });

  it('a raw image body with fields in the query string works too', async () => {
    const res = await fetch(`${api.baseUrl}/v1/inspections?serial=SN-4&partNumber=PN-1001&lotId=LOT-1`, {
      method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'image/png' }, body: new Uint8Array(good[2]!),
    });
    expect(res.status).toBe(202);
    const v = await verdictFor(((await res.json()) as { id: string }).id);
    expect(v).toMatchObject({ serial: 'SN-4', verdict: 'PASS' });
  });

  it('a repeat with the same Idempotency-Key returns the first inspection, showing only what its 202 did, and creates nothing', async () => {
    const first = await postImage(api.baseUrl, apiKey, [{ bytes: good[3]! }], { serial: 'SN-5', partNumber: 'PN-1001', lotId: 'LOT-1' }, { 'idempotency-key': 'cam-1-SN-5' });
    expect(first.status).toBe(202);
    await verdictFor(first.body.id);
    const again = await postImage(api.baseUrl, apiKey, [{ bytes: good[3]! }], { serial: 'SN-5', partNumber: 'PN-1001', lotId: 'LOT-1' }, { 'idempotency-key': 'cam-1-SN-5' });
    expect(again.status).toBe(200);
    assertApiResponse('/v1/inspections', 'post', 200, again.body);
    expect(again.body).toEqual({ id: first.body.id, status: 'done' });
    expect(again.headers.get('location')).toBe(`/v1/inspections/${first.body.id}`);
    const rows = await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE serial = 'SN-5'`);
    expect(rows.rows[0].n).toBe(1);
    await new Promise((r) => setTimeout(r, 500));
    expect(mes.verdicts().filter((v) => v.serial === 'SN-5')).toHaveLength(1);
  });

  it('the same Idempotency-Key with another part is refused (422) and drops nothing: the other part goes in under a key of its own', async () => {
    const first = await postImage(api.baseUrl, apiKey, [{ bytes: good[4]! }], { serial: 'SN-K1', partNumber: 'PN-1001', lotId: 'LOT-K' }, { 'idempotency-key': 'reused-key' });
    expect(first.status).toBe(202);
    const other = await postImage(api.baseUrl, apiKey, [{ bytes: defect('pit')[0]! }], { serial: 'SN-K2', partNumber: 'PN-1001', lotId: 'LOT-K2' }, { 'idempotency-key': 'reused-key' });
    expect(other.status).toBe(422);
    expect(other.body.error).toMatchObject({ code: 'idempotency_key_reused', message: expect.stringContaining('reused-key') });
    expect(JSON.stringify(other.body)).not.toContain(first.body.id);
    expect((await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE serial = 'SN-K2'`)).rows[0].n).toBe(0);
    // An expired key may be used again (here, made to expire).
    await database.db.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'reused-key'`);
    const reused = await postImage(api.baseUrl, apiKey, [{ bytes: defect('pit')[0]! }], { serial: 'SN-K2', partNumber: 'PN-1001', lotId: 'LOT-K2' }, { 'idempotency-key': 'reused-key' });
    expect(reused.status).toBe(202);
    expect(reused.body.id).not.toBe(first.body.id);
    await verdictFor(reused.body.id);
  });

  it('fields the upload omits come from the station\'s retained MES context', async () => {
    await mes.publish(`${prefix}/line-a/cam-1/context`, JSON.stringify({ partNumber: 'PN-1001', lotId: 'LOT-CTX', workOrder: 'WO-CTX', operation: null }), true);
    await until(async () => (await database.db.query(`SELECT 1 FROM station_context WHERE station_id = 'cam-1'`)).rowCount === 1, 'the context to be stored');
    const res = await postImage(api.baseUrl, apiKey, [{ bytes: good[4]! }], { serial: 'SN-6' });
    expect(res.status).toBe(202);
    const v = await verdictFor(res.body.id);
    expect(v).toMatchObject({ partNumber: 'PN-1001', lotId: 'LOT-CTX', workOrder: 'WO-CTX' });
    // An explicit field wins over the context.
    const own = await postImage(api.baseUrl, apiKey, [{ bytes: good[4]! }], { serial: 'SN-7', lotId: 'LOT-OWN' });
    expect((await verdictFor(own.body.id)).lotId).toBe('LOT-OWN');
    await mes.publish(`${prefix}/line-a/cam-1/context`, '', true);
    await until(async () => (await database.db.query(`SELECT 1 FROM station_context WHERE station_id = 'cam-1'`)).rowCount === 0, 'the context to be cleared');
  });

  it('context counts only for a registered station on its own line: the rest is logged, counted and ignored', async () => {
    await mes.publish(`${prefix}/WRONG-LINE/cam-1/context`, JSON.stringify({ partNumber: 'PN-EVIL', lotId: 'LOT-EVIL' }), true);
    await mes.publish(`${prefix}/line-a/cam-unknown/context`, JSON.stringify({ partNumber: 'PN-EVIL', lotId: 'LOT-EVIL' }), true);
    const counted = async () => (await (await fetch(`${api.baseUrl}/metrics`)).text()).match(/visq_mes_context_rejected_total\{reason="(wrong_line|unknown_station)"\} (\d+)/g) ?? [];
    await until(async () => (await counted()).length === 2, 'both refusals to be counted');
    expect((await database.db.query(`SELECT station_id FROM station_context`)).rows).toEqual([]);
    expect(api.json().map((l) => l.msg)).toContain('context on line "WRONG-LINE" for a station of line "line-a"; ignored');
    await mes.publish(`${prefix}/WRONG-LINE/cam-1/context`, '', true);
    await mes.publish(`${prefix}/line-a/cam-unknown/context`, '', true);
  });

  it('a lot shows its counts and pages through its inspections', async () => {
    const lot = await getJson(`${api.baseUrl}/v1/lots/LOT-1`, reviewer);
    expect(lot.status).toBe(200);
    assertApiResponse('/v1/lots/{lotId}', 'get', 200, lot.body);
    const serials = ['SN-1', 'SN-2', 'SN-3', 'SN-4', 'SN-5'];
    expect(lot.body.partNumbers).toEqual(['PN-1001']);
    const c = lot.body.counts;
    expect(c.PASS + c.FAIL + c.REVIEW + c.pending).toBe(serials.length);
    expect(c.PASS).toBe(3);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: any } = await getJson(`${api.baseUrl}/v1/lots/LOT-1?limit=2${cursor ? `&cursor=${cursor}` : ''}`, reviewer);
      expect(page.body.inspections.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.inspections.map((i: any) => i.serial));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual(serials);
    expect((await getJson(`${api.baseUrl}/v1/lots/NO-SUCH-LOT`, reviewer)).status).toBe(404);
  });
});

describe('quality plans and review', () => {
  it('engineers store plan versions over HTTP; the next inspection uses the new one', async () => {
    const plan = JSON.parse(readFileSync(fixture('plans', 'PN-1001.json'), 'utf8'));
    plan.characteristics[0].usl = 0.55;
    const asReviewer = await fetch(`${api.baseUrl}/v1/quality-plans/PN-1001`, { method: 'PUT', headers: { authorization: `Bearer ${reviewer}`, 'content-type': 'application/json' }, body: JSON.stringify(plan) });
    expect(asReviewer.status).toBe(403);
    const put = await fetch(`${api.baseUrl}/v1/quality-plans/PN-1001`, { method: 'PUT', headers: { authorization: `Bearer ${engineer}`, 'content-type': 'application/json' }, body: JSON.stringify(plan) });
    expect(put.status).toBe(201);
    const stored = await put.json();
    assertApiResponse('/v1/quality-plans/{partNumber}', 'put', 201, stored);
    expect(stored).toMatchObject({ partNumber: 'PN-1001', version: 2 });

    const current = await getJson(`${api.baseUrl}/v1/quality-plans/PN-1001`, reviewer);
    assertApiResponse('/v1/quality-plans/{partNumber}', 'get', 200, current.body);
    expect(current.body.plan.characteristics[0].usl).toBe(0.55);
    expect((await getJson(`${api.baseUrl}/v1/quality-plans/PN-1001?version=1`, reviewer)).body.plan.characteristics[0].usl).toBe(0.5);

    const res = await postImage(api.baseUrl, apiKey, [{ bytes: good[5]! }], { serial: 'SN-8', partNumber: 'PN-1001', lotId: 'LOT-2' });
    const v = await verdictFor(res.body.id);
    expect(v.plan.version).toBe(2);
    expect(v.characteristics[0].usl).toBe(0.55);
  });

  it('an invalid plan is refused with the reason and stores nothing', async () => {
    const bad = { partNumber: 'PN-1001', characteristics: [{ name: 'x', model: 'surface-anomaly', measure: 'no_such_measure', usl: 1 }] };
    const put = await fetch(`${api.baseUrl}/v1/quality-plans/PN-1001`, { method: 'PUT', headers: { authorization: `Bearer ${engineer}`, 'content-type': 'application/json' }, body: JSON.stringify(bad) });
    expect(put.status).toBe(400);
    expect((await put.json()).error).toMatchObject({ code: 'invalid_plan', message: expect.stringContaining('no_such_measure') });
    const notJson = await fetch(`${api.baseUrl}/v1/quality-plans/PN-1001`, { method: 'PUT', headers: { authorization: `Bearer ${engineer}`, 'content-type': 'application/json' }, body: '{"partNumber":' });
    expect(notJson.status).toBe(400);
    const versions = await database.db.query(`SELECT max(version) AS v FROM quality_plans WHERE part_number = 'PN-1001'`);
    expect(versions.rows[0].v).toBe(2);
  });

  it('flagged parts wait for a reviewer, whose disposition goes to the MES as the final verdict', async () => {
    // Every value in [0, 1] lies within this guard band of the limit: a deterministic REVIEW.
    const plan = { partNumber: 'PN-R', characteristics: [{ name: 'surface_anomaly', model: 'surface-anomaly', measure: 'anomaly_score', usl: 2, guardBand: 2 }] };
    const put = await fetch(`${api.baseUrl}/v1/quality-plans/PN-R`, { method: 'PUT', headers: { authorization: `Bearer ${engineer}`, 'content-type': 'application/json' }, body: JSON.stringify(plan) });
    expect(put.status).toBe(201);
    const res = await postImage(api.baseUrl, apiKey, [{ bytes: good[6]! }], { serial: 'SN-R1', partNumber: 'PN-R', lotId: 'LOT-R' });
    const first = await verdictFor(res.body.id);
    expect(first).toMatchObject({ verdict: 'REVIEW', final: false });

    const queue = await getJson(`${api.baseUrl}/v1/review?partNumber=PN-R`, reviewer);
    assertApiResponse('/v1/review', 'get', 200, queue.body);
    expect(queue.body.inspections.map((i: any) => i.id)).toEqual([res.body.id]);
    expect((await getJson(`${api.baseUrl}/v1/review`, apiKey)).status).toBe(403);

    const dispose = (body: unknown, token = reviewer) => fetch(`${api.baseUrl}/v1/inspections/${res.body.id}/disposition`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    expect((await dispose({ decision: 'keep', reason: 'x' })).status).toBe(400);
    expect((await dispose({ decision: 'scrap', reason: 'x' }, apiKey)).status).toBe(403);
    const ok = await dispose({ decision: 'scrap', reason: 'deep scratch across the sealing face' });
    expect(ok.status).toBe(200);
    const doc = await ok.json();
    assertApiResponse('/v1/inspections/{id}/disposition', 'post', 200, doc);
    expect(doc).toMatchObject({ verdict: 'FAIL', modelVerdict: 'REVIEW', final: true, disposition: { decision: 'scrap', by: 'rita' } });

    const final = await verdictFor(res.body.id, true);
    assertVerdictMessage(final);
    expect(final).toMatchObject({ verdict: 'FAIL', final: true, supersedes: first.messageId, disposition: { decision: 'scrap', reason: 'deep scratch across the sealing face', by: 'rita' } });
    expect(final.messageId).not.toBe(first.messageId);
    expect((await dispose({ decision: 'accept', reason: 'changed my mind' })).status).toBe(409);
    expect((await getJson(`${api.baseUrl}/v1/review?partNumber=PN-R`, reviewer)).body.inspections).toEqual([]);
    const lot = await getJson(`${api.baseUrl}/v1/lots/LOT-R`, reviewer);
    expect(lot.body.counts).toEqual({ PASS: 0, FAIL: 1, REVIEW: 0, pending: 0 });
    expect(lot.body.inspections[0]).toMatchObject({ verdict: 'FAIL', final: true });
  });

  it('every verdict message says whether the part waits for a person, as the API and the review queue do', async () => {
    // A plan naming a model this registry lacks can only come from another registry (here: a copy of
    // the shipped model under another id, known to the command that stores the plan).
    const otherModels = mkdtempSync(path.join(os.tmpdir(), 'visq-other-models-'));
    cpSync(fixture('..', 'models', 'surface-anomaly'), path.join(otherModels, 'gone-model'), { recursive: true });
    const manifest = JSON.parse(readFileSync(path.join(otherModels, 'gone-model', 'model.json'), 'utf8'));
    writeFileSync(path.join(otherModels, 'gone-model', 'model.json'), JSON.stringify({ ...manifest, id: 'gone-model' }));
    const score = (c: Record<string, unknown>) => ({ name: 'surface_anomaly', model: 'surface-anomaly', measure: 'anomaly_score', ...c });
    const cases = [
      { partNumber: 'PN-A1', plan: { characteristics: [score({ usl: 2 })] }, verdict: 'PASS', awaiting: false },
      { partNumber: 'PN-A2', plan: { characteristics: [score({ usl: -1 })] }, verdict: 'FAIL', awaiting: false },
      { partNumber: 'PN-A3', plan: { confirmFail: true, characteristics: [score({ usl: -1 })] }, verdict: 'FAIL', awaiting: true },
      { partNumber: 'PN-A4', plan: { characteristics: [score({ usl: 2, guardBand: 2 })] }, verdict: 'REVIEW', awaiting: true },
      { partNumber: 'PN-A5', plan: { characteristics: [score({ model: 'gone-model', usl: 2 })] }, verdict: 'REVIEW', awaiting: true, models: otherModels },
    ];
    try {
      for (const c of cases) {
        const file = path.join(otherModels, `${c.partNumber}.json`);
        writeFileSync(file, JSON.stringify({ partNumber: c.partNumber, ...c.plan }));
        expect((await cli(['plan', 'apply', file], { ...env, ...(c.models ? { VISQ_MODELS_DIR: c.models } : {}) })).code).toBe(0);
        const res = await postImage(api.baseUrl, apiKey, [{ bytes: good[2]! }], { serial: `SN-${c.partNumber}`, partNumber: c.partNumber, lotId: 'LOT-AW' });
        const message = await verdictFor(res.body.id);
        const doc = (await getJson(`${api.baseUrl}/v1/inspections/${res.body.id}`, reviewer)).body;
        const queued = (await getJson(`${api.baseUrl}/v1/review?partNumber=${c.partNumber}`, reviewer)).body.inspections.map((i: any) => i.id);
        expect({ partNumber: c.partNumber, verdict: message.verdict, message: message.awaitingReview, api: doc.awaitingReview, inReviewQueue: queued.includes(res.body.id) })
          .toEqual({ partNumber: c.partNumber, verdict: c.verdict, message: c.awaiting, api: c.awaiting, inReviewQueue: c.awaiting });
        if (c.awaiting) {
          const disposed = await fetch(`${api.baseUrl}/v1/inspections/${res.body.id}/disposition`, {
            method: 'POST', headers: { authorization: `Bearer ${reviewer}`, 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'accept', reason: 'checked by hand' }),
          });
          expect(disposed.status).toBe(200);
          expect(await verdictFor(res.body.id, true)).toMatchObject({ final: true, awaitingReview: false });
        }
      }
    } finally {
      rmSync(otherModels, { recursive: true, force: true });
    }
  });

  it('a decided inspection cannot be changed in the database', async () => {
    await expect(database.db.query(`UPDATE inspections SET verdict = 'PASS' WHERE serial = 'SN-2'`)).rejects.toThrow(/decided and cannot be changed/);
    await expect(database.db.query(`DELETE FROM inspections WHERE serial = 'SN-2'`)).rejects.toThrow(/cannot be deleted/);
  });
});

describe('operations', () => {
  it('health, readiness and metrics answer without credentials', async () => {
    expect((await fetch(`${api.baseUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${api.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok', queue: 'ok', broker: 'ok', models: 'ok', decoder: 'ok', storage: 'ok' } });
    const metrics = await (await fetch(`${api.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/visq_http_request_duration_seconds_count\{method="POST",route="\/v1\/inspections",status="202"\} \d+/);
    expect(metrics).toMatch(/visq_image_store_quota_bytes \d+/);
    expect(metrics).toMatch(/visq_queue_jobs\{state="waiting"\} \d+/);
    expect(metrics).toMatch(/visq_verdict_delivery_latency_seconds_count \d+/);
    const unauthenticated = await fetch(`${api.baseUrl}/v1/review`);
    expect(unauthenticated.status).toBe(401);
    for (const [header, value] of [['x-content-type-options', 'nosniff'], ['x-frame-options', 'SAMEORIGIN'], ['cache-control', 'no-store']]) {
      expect(unauthenticated.headers.get(header!)).toBe(value);
    }
    expect(unauthenticated.headers.get('strict-transport-security')).toMatch(/max-age=/);
  });

  it('every log line about an inspection names it, and no secret is logged', async () => {
    const lines = [...api.json(), ...worker.json()];
    const decided = lines.filter((l) => l.msg === 'inspection decided');
    expect(decided.length).toBeGreaterThan(5);
    expect(decided.every((l) => typeof l.inspectionId === 'string')).toBe(true);
    const all = [...api.logs, ...worker.logs].join('\n');
    for (const bearer of [apiKey, reviewer, engineer]) expect(all).not.toContain(secretOf(bearer));
  });

  it('the module announces itself online, and offline when it stops', async () => {
    const state = () => mes.messages.filter((m) => m.topic === `${prefix}/_module/state`).map((m) => m.payload);
    expect(state()).toContain('online');
    expect(await api.stop()).toBe(0);
    await until(() => state().at(-1) === 'offline', 'the offline state');
  });
});
