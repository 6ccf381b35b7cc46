import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { until } from '../support/services.js';
import { pngHeader } from '../support/images.js';
import { cliJson, createTestDatabase, fixture, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * Generated hostile uploads: mutated images, hostile field values, wrong content types. Whatever
 * arrives, the answer is a 202 or a clear 4xx, never a 5xx; the process stays healthy; every 202
 * ends with a verdict and nothing else leaves a trace.
 */
const dir = fixture('images', 'machined-surface', 'good');
const png = readFileSync(path.join(dir, readdirSync(dir).filter((f) => f.endsWith('.png')).sort()[0]!));

function mulberry32(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hostileStrings = [
  "'; DROP TABLE inspections; --", '../../../../etc/passwd', '..\\..\\windows\\system32', '%00', '\u0000', '\u001b[31mred',
  '\ud800', '\uffff', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', 'x'.repeat(5000), '<script>alert(1)</script>', '${jndi:ldap://x}', ' ', '', 'SN-1\r\nX-Injected: 1',
];

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let apiKey: string;

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), extra: { VISQ_MAX_IMAGE_BYTES: String(256 * 1024), VISQ_STATION_RATE_LIMIT: '100000' } }));
  ({ apiKey } = await cliJson(['station', 'add', 'cam-h', '--line', 'l1'], env));
  await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], env);
  visq = await startVisq('start', env);
});

afterAll(async () => {
  await visq?.stop();
  await database?.drop();
  await cleanup?.();
});

describe('hostile uploads, generated', () => {
  it('400 seeded cases: 202 or a clear 4xx, never a 5xx; every 202 is decided; nothing else is stored', async () => {
    const random = mulberry32(20261122);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const jpeg = await sharp(png).jpeg().toBuffer();
    const tiff = await sharp(png).tiff().toBuffer();
    const webp = await sharp(png).webp().toBuffer();
    const sources = [png, jpeg, tiff, webp];

    const mutate = (bytes: Buffer): Buffer => {
      const b = Buffer.from(bytes);
      switch (Math.floor(random() * 5)) {
        case 0: return b.subarray(0, Math.floor(random() * b.length)); // truncated
        case 1: for (let i = 0; i < 1 + random() * 20; i++) b[Math.floor(random() * b.length)] = Math.floor(random() * 256); return b; // flipped bytes
        case 2: return Buffer.concat([b.subarray(0, 16), Buffer.alloc(Math.floor(random() * 5000), Math.floor(random() * 256))]); // header then junk
        case 3: return Buffer.from(Array.from({ length: Math.floor(random() * 3000) }, () => Math.floor(random() * 256))); // noise
        default: return b; // intact
      }
    };
    const field = () => (random() < 0.7 ? `SN-${Math.floor(random() * 1e6)}` : pick(hostileStrings));

    const outcomes: number[] = [];
    const accepted: string[] = [];
    for (let i = 0; i < 400; i++) {
      const image = mutate(pick(sources));
      const serial = field();
      const kind = random();
      let res: Response;
      if (kind < 0.6) {
        const form = new FormData();
        form.append(random() < 0.95 ? 'image' : pick(['img', 'image[]', '../image']), new Blob([new Uint8Array(image)], { type: pick(['image/png', 'image/jpeg', 'application/octet-stream', 'text/html']) }), pick(['a.png', '../../x.png', '\u0000.png', 'x'.repeat(300)]));
        form.append('serial', serial);
        form.append('partNumber', random() < 0.9 ? 'PN-1001' : pick(hostileStrings));
        form.append('lotId', random() < 0.9 ? 'LOT-H' : pick(hostileStrings));
        if (random() < 0.2) form.append('capturedAt', pick(['2026-11-22T10:00:00Z', 'yesterday', '9999-99-99', '2026-11-22T10:00:00+25:00']));
        res = await fetch(`${visq.baseUrl}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
      } else {
        const q = new URLSearchParams({ serial, partNumber: 'PN-1001', lotId: random() < 0.9 ? 'LOT-H' : pick(hostileStrings) });
        res = await fetch(`${visq.baseUrl}/v1/inspections?${q}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': pick(['image/png', 'image/jpeg', 'image/tiff', 'image/webp', 'image/gif', 'text/plain', 'application/json', 'multipart/form-data', 'image/png; charset=utf-16']) },
          body: new Uint8Array(image),
        });
      }
      const text = await res.text();
      outcomes.push(res.status);
      expect(res.status, `case ${i}: ${text}`).toBeLessThan(500);
      if (res.status === 202) accepted.push(JSON.parse(text).id);
      else {
        expect(res.status, `case ${i}`).toBeGreaterThanOrEqual(400);
        const body = JSON.parse(text);
        expect(typeof body.error.code).toBe('string');
        expect(body.error.message.length).toBeGreaterThan(5);
      }
    }
    // The generator must exercise both sides.
    expect(accepted.length).toBeGreaterThan(20);
    expect(outcomes.filter((s) => s >= 400).length).toBeGreaterThan(150);

    await until(async () => (await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE status = 'done'`)).rows[0].n === accepted.length, 'every accepted upload to be decided', 60_000);
    const stored = await database.db.query('SELECT id FROM inspections');
    expect(new Set(stored.rows.map((r) => r.id))).toEqual(new Set(accepted));
    expect((await database.db.query('SELECT count(*)::int AS n FROM outbox')).rows[0].n).toBe(accepted.length);
    expect((await fetch(`${visq.baseUrl}/readyz`)).status).toBe(200);
    expect(visq.child.exitCode).toBeNull();
  }, 180_000);
});

describe('images whose decoding would cost more than their bytes suggest', () => {
  const post = (bytes: Buffer, serial: string) => postImage(visq.baseUrl, apiKey, [{ bytes }], { serial, partNumber: 'PN-1001', lotId: 'LOT-SHAPES' });

  it.each([
    // Both under 50 MP: a gigabyte to decode the first, seconds of CPU for the rows of the second.
    ['49,000,000 × 1', pngHeader(49_000_000, 1), /49000000×1 pixels; the limit is 20000 pixels on a side/],
    ['1 × 49,000,000', pngHeader(1, 49_000_000), /1×49000000 pixels; the limit is 20000 pixels on a side/],
    ['10,000 × 100 (100:1)', pngHeader(10_000, 100), /100 times longer than wide; the limit is 20:1/],
  ])('refuses %s from its header with 413, and records nothing', async (_name, bytes, message) => {
    const before = Number((await database.db.query('SELECT count(*) AS n FROM inspections')).rows[0].n);
    const res = await post(bytes, `SN-SHAPE-${bytes.length}`);
    expect(res.status).toBe(413);
    expect(res.body.error.message).toMatch(message);
    expect(Number((await database.db.query('SELECT count(*) AS n FROM inspections')).rows[0].n)).toBe(before);
  });

  it('a burst of large uploads from one station gets its share of the decoders (429 for the rest), and every accepted one is decided', async () => {
    // 36 MP of flat grey: 117 kB to send, over a hundred milliseconds to decode each.
    const large = await sharp({ create: { width: 6000, height: 6000, channels: 3, background: { r: 90, g: 90, b: 90 } } }).png({ compressionLevel: 9 }).toBuffer();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => post(large, `SN-BURST-${i}`)));
    const statuses = answers.map((a) => a.status);
    expect(statuses.every((s) => s === 202 || s === 429 || s === 503), statuses.join()).toBe(true);
    expect(statuses).toContain(202);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.body.error.code).toBe('station_decode_limit');
    expect(refused[0]!.headers.get('retry-after')).toBe('1');
    const ids = answers.filter((a) => a.status === 202).map((a) => a.body.id);
    await until(async () => Number((await database.db.query(`SELECT count(*) AS n FROM inspections WHERE id = ANY($1) AND status = 'done'`, [ids])).rows[0].n) === ids.length, 'the accepted burst to be decided', 60_000);
  }, 120_000);
});
