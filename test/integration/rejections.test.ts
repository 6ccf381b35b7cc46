import { readdirSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { assertApiResponse } from '../support/contract.js';
import { bmpHeader, gif1x1, pngBomb } from '../support/images.js';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, MesClient, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * Bad input gets a clear error and changes nothing. This file runs `visq start` (one process)
 * on BullMQ's PostgreSQL queue backend: no REDIS_URL.
 */
const dir = fixture('images', 'machined-surface', 'good');
const png = readFileSync(path.join(dir, readdirSync(dir).filter((f) => f.endsWith('.png')).sort()[0]!));
const maxBytes = 512 * 1024;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let apiKey: string;
let reviewer: string;

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), extra: { VISQ_MAX_IMAGE_BYTES: String(maxBytes), VISQ_MAX_IMAGE_PIXELS: String(40_000_000) } }));
  ({ apiKey } = await cliJson(['station', 'add', 'cam-x', '--line', 'l1'], env));
  ({ token: reviewer } = await cliJson(['user', 'add', 'rob', '--role', 'reviewer'], env));
  await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], env);
  visq = await startVisq('start', env);
});

afterAll(async () => {
  await visq?.stop();
  await database?.drop();
  await cleanup?.();
});

const fields = { serial: 'SN-1', partNumber: 'PN-1001', lotId: 'LOT-1' };
const raw = (body: Uint8Array, type: string, query = 'serial=SN-1&partNumber=PN-1001&lotId=LOT-1', key = apiKey) =>
  fetch(`${visq.baseUrl}/v1/inspections?${query}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': type }, body: new Uint8Array(body) });

async function expectError(res: { status: number; body: any } | Response, status: number, code: string | RegExp) {
  const r = res instanceof Response ? { status: res.status, body: await res.json().catch(() => null) } : res;
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.body.error.code).toMatch(code);
  expect(r.body.error.message.length).toBeGreaterThan(5);
  assertApiResponse('/v1/inspections', 'post', status, r.body);
}

describe('images that are refused', () => {
  it.each([
    ['a corrupt PNG', Buffer.concat([png.subarray(0, 64), Buffer.alloc(4096, 7)]), 415, /corrupt_image|unsupported_image/],
    ['a truncated PNG', png.subarray(0, Math.floor(png.length / 2)), 415, /corrupt_image/],
    ['random bytes', Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 256)), 415, /unsupported_image/],
    ['zero bytes', Buffer.alloc(0), 415, /unsupported_image/],
    ['a 30000×30000 PNG (decompression bomb)', pngBomb(30000, 30000), 413, /image_too_large/],
    ['a GIF', gif1x1, 415, /unsupported_image/],
    ['a BMP', bmpHeader, 415, /unsupported_image/],
  ])('%s, as multipart', async (_name, bytes, status, code) => {
    await expectError(await postImage(visq.baseUrl, apiKey, [{ bytes }], fields), status, code);
  });

  it('a truncated JPEG', async () => {
    const sharp = (await import('sharp')).default;
    const jpeg = await sharp(png).jpeg().toBuffer();
    await expectError(await postImage(visq.baseUrl, apiKey, [{ bytes: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), type: 'image/jpeg' }], fields), 415, /corrupt_image/);
  });

  it('a PNG that claims to be a JPEG is decoded as what it is and accepted', async () => {
    const res = await postImage(visq.baseUrl, apiKey, [{ bytes: png, type: 'image/jpeg', name: 'x.jpg' }], { ...fields, serial: 'SN-OK' });
    expect(res.status).toBe(202);
  });

  it('a body over the limit, raw or multipart', async () => {
    await expectError(await raw(Buffer.alloc(maxBytes + 1000, 1), 'image/png'), 413, /body_too_large/);
    await expectError(await postImage(visq.baseUrl, apiKey, [{ bytes: Buffer.alloc(maxBytes + 1000, 1) }], fields), 413, /image_too_large/);
  });

  it('an unsupported content type', async () => {
    await expectError(await raw(Buffer.from('hello'), 'text/plain'), 415, /unsupported_media_type/);
    await expectError(await raw(gif1x1, 'image/gif'), 415, /unsupported_image/);
  });

  it('a multipart body without an image, or with the wrong file field', async () => {
    await expectError(await postImage(visq.baseUrl, apiKey, [], fields), 400, /missing_image/);
    const form = new FormData();
    form.append('picture', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'p.png');
    form.append('serial', 'SN-1');
    const res = await fetch(`${visq.baseUrl}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
    await expectError(res, 400, /invalid_field/);
  });

  it('a multipart body with thousands of fields, or too many files', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'p.png');
    for (let i = 0; i < 3000; i++) form.append(`f${i}`, 'x');
    const fields = await fetch(`${visq.baseUrl}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
    await expectError(fields, 413, /too_many_fields/);
    const files = new FormData();
    for (let i = 0; i < 50; i++) files.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), `p${i}.png`);
    files.append('serial', 'SN-1');
    await expectError(await fetch(`${visq.baseUrl}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: files }), 413, /too_many_images/);
  });

  it('a malformed multipart body', async () => {
    const res = await fetch(`${visq.baseUrl}/v1/inspections`, {
      method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'multipart/form-data; boundary=xyz' }, body: '--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nabc',
    });
    await expectError(res, 400, /invalid_multipart/);
  });
});

describe('fields that are refused', () => {
  it.each([
    ['no serial', { partNumber: 'PN-1001', lotId: 'LOT-1' }, 400, /invalid_field/, /serial/],
    ['an empty serial', { ...fields, serial: '' }, 400, /invalid_field/, /serial/],
    ['a serial of 10 000 characters', { ...fields, serial: 'x'.repeat(10_000) }, 400, /invalid_field/, /serial/],
    ['control characters', { ...fields, serial: 'SN\u0000-1' }, 400, /invalid_field/, /control/],
    ['a bell in a serial', { ...fields, serial: 'SN-\u0007-1' }, 400, /invalid_field/, /control or format characters/],
    ['a right-to-left override in a lot', { ...fields, lotId: 'LOT-\u202E1-TOL' }, 400, /invalid_field/, /U\+202E/],
    ['a zero-width space in a serial', { ...fields, serial: 'SN-\u200B1' }, 400, /invalid_field/, /format characters/],
    ['a capture time in year 0001', { ...fields, capturedAt: '0001-01-01T00:00:00Z' }, 400, /invalid_field/, /more than 24 h from the time the upload arrived/],
    ['a capture time in year 9999', { ...fields, capturedAt: '9999-01-01T00:00:00Z' }, 400, /invalid_field/, /check the camera's clock/],
    ['a malformed capturedAt', { ...fields, capturedAt: 'yesterday' }, 400, /invalid_field/, /capturedAt/],
    ['no lotId and no MES context', { serial: 'SN-1', partNumber: 'PN-1001' }, 400, /missing_field/, /lotId/],
    ['an unknown part number', { ...fields, partNumber: 'PN-NOPE' }, 422, /no_quality_plan/, /PN-NOPE/],
  ])('%s', async (_name, f, status, code, message) => {
    const res = await postImage(visq.baseUrl, apiKey, [{ bytes: png }], f as Record<string, string>);
    await expectError(res, status, code);
    expect(res.body.error.message).toMatch(message);
  });

  it('a field given twice', async () => {
    await expectError(await raw(png, 'image/png', 'serial=A&serial=B&partNumber=PN-1001&lotId=L'), 400, /invalid_field/);
  });

  it('a malformed Idempotency-Key', async () => {
    await expectError(await postImage(visq.baseUrl, apiKey, [{ bytes: png }], fields, { 'idempotency-key': 'x'.repeat(500) }), 400, /invalid_idempotency_key/);
  });
});

describe('credentials that are refused', () => {
  it('no key, a malformed key, an unknown key', async () => {
    const noKey = await fetch(`${visq.baseUrl}/v1/inspections`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) });
    await expectError(noKey, 401, /unauthorized/);
    await expectError(await raw(png, 'image/png', undefined, 'nonsense'), 401, /unauthorized/);
    await expectError(await raw(png, 'image/png', undefined, `visq_${'0'.repeat(16)}_${'A'.repeat(43)}`), 401, /unauthorized/);
    // The right key id with a wrong secret.
    await expectError(await raw(png, 'image/png', undefined, `${apiKey.slice(0, 22)}${'B'.repeat(43)}`), 401, /unauthorized/);
  });

  it('a station key on a person\'s endpoint, and a person\'s token on the camera endpoint', async () => {
    for (const p of ['/v1/review', '/v1/lots/LOT-1', '/v1/quality-plans/PN-1001', `/v1/inspections/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`]) {
      const r = await getJson(`${visq.baseUrl}${p}`, apiKey);
      expect(r.status, p).toBe(403);
      expect(r.body.error.code).toBe('forbidden');
    }
    await expectError(await raw(png, 'image/png', undefined, reviewer), 403, /forbidden/);
  });
});

describe('plans and MES messages that are refused', () => {
  it('visq plan apply with an invalid plan exits 2 naming the problem, and stores nothing', async () => {
    const file = path.join(env.VISQ_DATA_DIR!, 'bad-plan.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, JSON.stringify({ partNumber: 'PN-BAD', characteristics: [{ name: 'a', model: 'surface-anomaly', measure: 'anomaly_score', lsl: 3, usl: 1 }] }));
    const r = await cli(['plan', 'apply', file], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lsl must not exceed usl/);
    await writeFile(file, '{ not json');
    expect((await cli(['plan', 'apply', file], env)).code).toBe(2);
    expect((await cli(['plan', 'apply', '/no/such/file.json'], env)).code).toBe(2);
    const n = await database.db.query(`SELECT count(*)::int AS n FROM quality_plans WHERE part_number = 'PN-BAD'`);
    expect(n.rows[0].n).toBe(0);
  });

  it('bad command-line usage exits 2 with a message', async () => {
    const r = await cli(['station', 'add', 'cam-y'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--line/);
    const dup = await cli(['station', 'add', 'cam-x', '--line', 'l1'], env);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/already registered/);
    expect((await cli(['user', 'add', 'z', '--role', 'boss'], env)).code).toBe(2);
    expect((await cli(['frobnicate'], env)).code).toBe(2);
    expect((await cli(['--help'], env)).code).toBe(0);
  });

  it('an MQTT context message that is not valid JSON is logged and ignored; nothing crashes', async () => {
    const mes = await MesClient.connect(inject('mqttUrl'), []);
    const topic = `${env.VISQ_TOPIC_PREFIX}/site1/l1/cam-x/context`;
    await mes.publish(topic, '{"lotId": ', false);
    await mes.publish(topic, Buffer.from([0xff, 0xfe, 0x00]), false);
    await mes.publish(topic, JSON.stringify({ lotId: 42 }), false);
    await mes.publish(topic, 'x'.repeat(100_000), false);
    await until(() => visq.json().filter((l) => /context message/.test(l.msg)).length >= 4, 'four rejections to be logged');
    expect(visq.json().filter((l) => /context message/.test(l.msg)).every((l) => l.level === 40)).toBe(true);
    const stored = await database.db.query('SELECT count(*)::int AS n FROM station_context');
    expect(stored.rows[0].n).toBe(0);
    expect((await fetch(`${visq.baseUrl}/healthz`)).status).toBe(200);
    await mes.end();
  });
});

describe('after all of that', () => {
  it('only the accepted upload left a trace: one inspection, its image, its verdict', async () => {
    await until(async () => (await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE status = 'done'`)).rows[0].n === 1, 'the accepted one to be decided');
    const rows = await database.db.query('SELECT serial FROM inspections');
    expect(rows.rows.map((r) => r.serial)).toEqual(['SN-OK']);
    expect((await database.db.query('SELECT count(*)::int AS n FROM lots')).rows[0].n).toBe(1);
    expect((await database.db.query('SELECT count(*)::int AS n FROM outbox')).rows[0].n).toBe(1);
    const files = await readdir(path.join(env.VISQ_DATA_DIR!, 'images'), { recursive: true, withFileTypes: true });
    // The accepted image and its anomaly map, nothing else.
    expect(files.filter((f) => f.isFile()).length).toBe(2);
    expect((await fetch(`${visq.baseUrl}/readyz`)).status).toBe(200);
  });
});
