import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { imageLockId } from '../../src/db/stored-files.js';
import { assertApiResponse } from '../support/contract.js';
import { withPngComment } from '../support/images.js';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, postImage, repoRoot, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * Image retention on real PostgreSQL, a real image store and `visq start` under a tiny quota: a
 * stream of uploads, the pruner's safe order and what it never removes, removed images in the API,
 * a full store answering 507, the race with an upload of the same bytes, two processes never
 * pruning at once, and a pruner killed mid-run.
 */
const pngs = (dir: string) => readdirSync(fixture('images', 'machined-surface', dir)).filter((f) => f.endsWith('.png')).sort()
  .map((f) => readFileSync(fixture('images', 'machined-surface', dir, f)));
const good = pngs('good');
const defects = pngs('bad/scratch');

const quota = 2_000_000;
const high = quota * 0.9;
const imageLockSpace = 0x76697369;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let apiKey: string;
let emil: string; // an engineer's token
let rita: string; // a reviewer's token

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({
    databaseUrl: database.url, mqttUrl: inject('mqttUrl'),
    extra: {
      VISQ_STORAGE_QUOTA: String(quota),
      // The floor is this machine's business, not this test's.
      VISQ_STORAGE_MIN_FREE: '1MB',
      VISQ_RETAIN_PASS_MIN_AGE: '0',
      VISQ_RETAIN_OVERLAY_MIN_AGE: '0',
      VISQ_PRUNE_INTERVAL_SECONDS: '2',
    },
  }));
  expect((await cli(['migrate'], env)).code).toBe(0);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-r', '--line', 'line-r'], env));
  ({ token: emil } = await cliJson(['user', 'add', 'emil', '--role', 'engineer'], env));
  ({ token: rita } = await cliJson(['user', 'add', 'rita', '--role', 'reviewer'], env));
  const base = JSON.parse(readFileSync(fixture('plans', 'PN-1001.json'), 'utf8'));
  for (const plan of [base, { ...base, partNumber: 'PN-1002', confirmFail: true }]) {
    const file = path.join(os.tmpdir(), `visq-retention-plan-${plan.partNumber}-${process.pid}.json`);
    writeFileSync(file, JSON.stringify(plan));
    const applied = await cli(['plan', 'apply', file], env);
    expect(applied.code, applied.stderr).toBe(0);
  }
  const held = await cli(['lot', 'hold', 'LOT-H', '--reason', 'customer complaint 4711: keep everything'], env);
  expect(held.code, held.stderr).toBe(0);
  expect(JSON.parse(held.stdout)).toMatchObject({ lotId: 'LOT-H', hold: { by: expect.stringMatching(/^cli:/), reason: 'customer complaint 4711: keep everything' } });
  visq = await startVisq('start', env);
});

afterAll(async () => {
  await visq?.stop();
  await database?.drop();
  await cleanup?.();
});

const imagesDir = () => path.join(env.VISQ_DATA_DIR!, 'images');
const imagePath = (sha: string) => path.join(imagesDir(), sha.slice(0, 2), sha.slice(2, 4), sha);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The bytes on disk under the image store and the prepared inputs, measured independently of visq. */
async function storeOnDisk(): Promise<number> {
  let total = 0;
  for (const dir of ['images', 'prepared']) {
    const entries = await readdir(path.join(env.VISQ_DATA_DIR!, dir), { recursive: true, withFileTypes: true }).catch(() => []);
    // A file listed may be unlinked by the pruner before it is measured.
    for (const e of entries) if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** A camera: posts, and on a 507 tries again (sooner than its Retry-After, to keep the test short). */
async function upload(bytes: Buffer, fields: Record<string, string>, key: string, base = visq.baseUrl): Promise<{ id: string; refused: number }> {
  for (let refused = 0; ; refused++) {
    const r = await postImage(base, apiKey, [{ bytes }], fields, { 'idempotency-key': key });
    if (r.status === 202 || r.status === 200) return { id: r.body.id, refused };
    expect(r.status, JSON.stringify(r.body)).toBe(507);
    assertApiResponse('/v1/inspections', 'post', 507, r.body);
    expect(r.headers.get('retry-after')).toBe('10');
    if (refused > 150) throw new Error(`upload ${key} still refused: ${r.body.error.message}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function decided(id: string, base = visq.baseUrl): Promise<any> {
  let doc: any;
  await until(async () => (doc = (await getJson(`${base}/v1/inspections/${id}`, rita)).body).status === 'done', `inspection ${id} decided`, 30_000, 25);
  return doc;
}

const document = async (id: string) => (await getJson(`${visq.baseUrl}/v1/inspections/${id}`, rita)).body;
const send = (method: string, url: string, token: string, body?: unknown) => fetch(`${visq.baseUrl}${url}`, {
  method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
}).then(async (res) => ({ status: res.status, body: await res.json() }));

type Kind = 'pass' | 'fail' | 'awaiting' | 'held' | 'pinned';
const streamed: { id: string; kind: Kind; sha: string }[] = [];

describe('retention by disk quota', () => {
  it('a stream against a tiny quota: the store never passes its quota, comes back under its high watermark, and nothing needed is removed', async () => {
    // Protected parts come early: they are the oldest when the pruner looks.
    const kinds: Kind[] = ['held', 'fail', 'awaiting', 'pass', 'pinned', 'held', 'fail', 'pass', 'pass', 'awaiting', 'held', 'fail',
      ...Array.from({ length: 14 }, () => 'pass' as const)];
    for (const [i, kind] of kinds.entries()) {
      const passing = kind === 'pass' || kind === 'held' || kind === 'pinned';
      const source = passing ? good : defects;
      const bytes = withPngComment(source[i % source.length]!, `stream ${i}`);
      const fields = { serial: `SN-S-${i}`, partNumber: kind === 'awaiting' ? 'PN-1002' : 'PN-1001', lotId: kind === 'held' ? 'LOT-H' : 'LOT-A' };
      const { id } = await upload(bytes, fields, `stream-${i}`);
      const doc = await decided(id);
      expect(doc).toMatchObject({ verdict: passing ? 'PASS' : 'FAIL', awaitingReview: kind === 'awaiting' });
      if (kind === 'pinned') {
        const pinned = await send('PUT', `/v1/images/${doc.images[0].sha256}/pin`, rita, { reason: 'evidence for supplier claim 17' });
        expect(pinned.status, JSON.stringify(pinned.body)).toBe(200);
        assertApiResponse('/v1/images/{sha256}/pin', 'put', 200, pinned.body);
        expect(pinned.body.pinned).toMatchObject({ by: 'rita', reason: 'evidence for supplier claim 17' });
      }
      streamed.push({ id, kind, sha: sha256(bytes) });
      // The quota holds at every step. Overlays are made by the workers for parts already let in: those of the last
      // seconds may not have been counted yet (a few kB each).
      const overlays = await database.db.query<{ bytes: number }>(`SELECT coalesce(sum(bytes), 0)::int AS bytes FROM stored_files WHERE retention_class = 'overlay' AND stored_at > now() - interval '5 seconds'`);
      expect(await storeOnDisk()).toBeLessThanOrEqual(quota + overlays.rows[0]!.bytes);
    }
    await until(async () => (await storeOnDisk()) <= high, 'the store back under its high watermark', 30_000);

    let removed = 0;
    for (const s of streamed) {
      const doc = await document(s.id);
      assertApiResponse('/v1/inspections/{id}', 'get', 200, doc);
      const [image] = doc.images;
      expect(image.sha256).toBe(s.sha); // the record keeps the image's sha256 whatever happened to the file
      const res = await fetch(`${visq.baseUrl}/v1/images/${s.sha}`, { headers: { authorization: `Bearer ${rita}` } });
      if (image.removed) {
        removed++;
        expect(s.kind).toBe('pass');
        expect(existsSync(imagePath(s.sha))).toBe(false);
        expect(image.removed).toEqual({
          at: expect.any(String), policy: 'quota',
          reason: 'the image store was over its high watermark (90 % of its 1.9 MiB quota): PASS images are removed oldest first',
        });
        expect(res.status).toBe(410);
        const body = await res.json();
        assertApiResponse('/v1/images/{sha256}', 'get', 410, body);
        expect(body.error).toEqual({ code: 'image_removed', message: `image ${s.sha} was removed on ${image.removed.at} by the retention policy (quota): ${image.removed.reason}` });
      } else {
        // No record points at a missing file.
        expect(existsSync(imagePath(s.sha))).toBe(true);
        expect(res.status).toBe(200);
      }
      if (s.kind !== 'pass') expect(image.removed, `${s.kind} image of ${s.id}`).toBeNull();
      if (s.kind === 'pinned') expect(image.pinned).toMatchObject({ by: 'rita', reason: 'evidence for supplier claim 17' });
      for (const o of doc.overlays) {
        expect(existsSync(imagePath(o.sha256))).toBe(o.removed === null);
        if (['awaiting', 'held', 'pinned'].includes(s.kind)) expect(o.removed, `${s.kind} overlay of ${s.id}`).toBeNull();
      }
    }
    expect(removed).toBeGreaterThan(0);
    // Prepared model inputs went first: those of decided parts are gone.
    const prepared = await database.db.query('SELECT count(*)::int AS live FROM stored_files WHERE prepared_removed_at IS NULL AND prepared_bytes > 0');
    expect(prepared.rows[0].live).toBeLessThan(streamed.length);
  });

  it('operator tools: storage status, a dry run, /metrics; a second pruner is refused while one leads', async () => {
    const status = await cliJson(['storage', 'status'], env);
    expect(status).toMatchObject({
      quotaBytes: quota, highWatermarkBytes: high, lowWatermarkBytes: quota * 0.8,
      classes: {
        pass: { files: expect.any(Number), bytes: expect.any(Number), oldest: expect.any(String), prunedFiles: expect.any(Number) },
        fail: { files: 5, oldest: expect.any(String), prunedFiles: 0 },
      },
      retention: { pass: { minAge: '0 seconds', maxAge: null }, fail: { minAge: '365 days', maxAge: null } },
    });
    expect(status.classes.pass.prunedFiles).toBeGreaterThan(0);
    expect(status.storedBytes).toBeLessThanOrEqual(quota);
    expect(status.bytesPerDay).toBeGreaterThan(0);
    expect(status.projectedDaysToQuota).toBeGreaterThanOrEqual(0);

    const dry = await cliJson(['storage', 'prune', '--dry-run'], env);
    expect(dry).toMatchObject({ dryRun: true, limits: { quotaBytes: quota }, removed: { files: expect.any(Number) } });
    const refused = await cli(['storage', 'prune'], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/a running visq process leads the pruner \(two never prune at once\)/);

    const metrics = await (await fetch(`${visq.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/visq_image_store_bytes\{class="fail"\} [1-9]\d*/);
    expect(metrics).toMatch(/visq_image_store_files\{class="pass"\} \d+/);
    expect(metrics).toMatch(/visq_image_store_pruned_bytes\{class="pass"\} [1-9]\d*/);
    expect(metrics).toMatch(/visq_image_store_pruned_files\{class="prepared"\} [1-9]\d*/);
    expect(metrics).toMatch(new RegExp(`visq_image_store_quota_bytes ${quota}\\b`));
  });

  it('a lot on hold keeps its images until it is released (engineers; audited); then they go, oldest first', async () => {
    expect((await send('POST', '/v1/lots/LOT-H/hold', rita, { reason: 'me too' })).status).toBe(403);
    const again = await send('POST', '/v1/lots/LOT-H/hold', emil, { reason: 'again' });
    expect(again).toMatchObject({ status: 409, body: { error: { code: 'already_held' } } });
    const lot = await getJson(`${visq.baseUrl}/v1/lots/LOT-H`, rita);
    assertApiResponse('/v1/lots/{lotId}', 'get', 200, lot.body);
    expect(lot.body.hold).toMatchObject({ reason: 'customer complaint 4711: keep everything' });

    const released = await send('POST', '/v1/lots/LOT-H/release', emil, { reason: 'complaint closed' });
    expect(released.status, JSON.stringify(released.body)).toBe(200);
    assertApiResponse('/v1/lots/{lotId}/release', 'post', 200, released.body);
    expect(released.body).toEqual({ lotId: 'LOT-H', hold: null });
    expect((await send('POST', '/v1/lots/LOT-H/release', emil, {})).body.error.code).toBe('not_held');

    // More parts: the released lot's images are now the oldest the policy lets go.
    const heldShas = streamed.filter((s) => s.kind === 'held').map((s) => s.sha);
    for (let i = 0; !heldShas.every((sha) => !existsSync(imagePath(sha))); i++) {
      if (i > 20) throw new Error('the released lot\'s images were not removed');
      await decided((await upload(withPngComment(good[i % good.length]!, `after release ${i}`), { serial: `SN-R-${i}`, partNumber: 'PN-1001', lotId: 'LOT-A' }, `release-${i}`)).id);
      await until(async () => (await storeOnDisk()) <= high, 'the store under its high watermark', 30_000);
    }
    for (const s of streamed.filter((x) => x.kind === 'held')) expect((await document(s.id)).images[0].removed).toMatchObject({ policy: 'quota' });
    // The pinned image is still there.
    const pinned = streamed.find((s) => s.kind === 'pinned')!;
    expect(existsSync(imagePath(pinned.sha))).toBe(true);

    const audit = (await getJson(`${visq.baseUrl}/v1/audit?limit=1000`, emil)).body.entries;
    assertApiResponse('/v1/audit', 'get', 200, { entries: audit });
    expect(audit.filter((e: any) => e.action === 'lot.hold')).toEqual([expect.objectContaining({ entity: 'lot:LOT-H', reason: 'customer complaint 4711: keep everything' })]);
    expect(audit.filter((e: any) => e.action === 'lot.release')).toEqual([expect.objectContaining({ actor: 'emil', reason: 'complaint closed' })]);
    expect(audit.filter((e: any) => e.action === 'image.pin')).toEqual([expect.objectContaining({ actor: 'rita', entity: `image:${pinned.sha}` })]);
    expect((await cli(['audit', 'verify'], env)).code).toBe(0);
  });

  it('the same bytes posted again after their image was removed: stored again, and the old record shows the file back', async () => {
    const gone = streamed.find((s) => s.kind === 'pass' && !existsSync(imagePath(s.sha)))!;
    const bytes = withPngComment(good[streamed.indexOf(gone) % good.length]!, `stream ${streamed.indexOf(gone)}`);
    expect(sha256(bytes)).toBe(gone.sha);
    const { id } = await upload(bytes, { serial: 'SN-AGAIN', partNumber: 'PN-1001', lotId: 'LOT-A' }, 'again-1');
    expect(await decided(id)).toMatchObject({ verdict: 'PASS', reason: null, images: [{ sha256: gone.sha, removed: null }] });
    expect((await document(gone.id)).images[0].removed).toBeNull();
  });

  it('an upload of the same bytes while the pruner removes them waits for it, then stores the file again', async () => {
    const live = streamed.find((s) => s.kind === 'fail')!;
    const bytes = withPngComment(defects[streamed.indexOf(live) % defects.length]!, `stream ${streamed.indexOf(live)}`);
    expect(existsSync(imagePath(live.sha))).toBe(true);
    const pruner = new pg.Client({ connectionString: database.url });
    await pruner.connect();
    try {
      // As the pruner does: the file's exclusive lock, then its removal recorded...
      await pruner.query('SELECT pg_advisory_lock($1, $2)', [imageLockSpace, imageLockId(live.sha)]);
      await pruner.query(`UPDATE stored_files SET removed_at = now(), removal_policy = 'quota', removal_reason = 'test' WHERE sha256 = $1`, [live.sha]);
      const posted = upload(bytes, { serial: 'SN-RACE', partNumber: 'PN-1001', lotId: 'LOT-A' }, 'race-1');
      // ...the upload found the file still there and now waits for the lock to record its inspection...
      await until(async () => (await pruner.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND NOT granted`,
        [imageLockSpace, imageLockId(live.sha) >>> 0])).rowCount === 1, 'the upload waiting for the file lock');
      // ...while the file is unlinked.
      await unlink(imagePath(live.sha));
      await pruner.query('UPDATE stored_files SET unlinked_at = now() WHERE sha256 = $1', [live.sha]);
      await pruner.query('SELECT pg_advisory_unlock($1, $2)', [imageLockSpace, imageLockId(live.sha)]);
      const doc = await decided((await posted).id);
      // Decided from its image, not REVIEW for a missing file.
      expect(doc).toMatchObject({ verdict: 'FAIL', reason: null, images: [{ sha256: live.sha, removed: null }] });
      expect(existsSync(imagePath(live.sha))).toBe(true);
      expect((await document(live.id)).images[0].removed).toBeNull();
    } finally {
      await pruner.end();
    }
  });

  it('a full store answers 507 with Retry-After before anything is written, and /readyz says why', async () => {
    // Everything left is kept: the lot is held, FAIL images are kept a year.
    expect((await send('POST', '/v1/lots/LOT-A/hold', emil, { reason: 'audit' })).status).toBe(200);
    let refusedBytes: Buffer | null = null;
    let body: any;
    for (let i = 0; i < 40 && !refusedBytes; i++) {
      const bytes = withPngComment(defects[i % defects.length]!, `fill ${i}`);
      const r = await postImage(visq.baseUrl, apiKey, [{ bytes }], { serial: `SN-F-${i}`, partNumber: 'PN-1001', lotId: 'LOT-A' });
      if (r.status === 507) {
        refusedBytes = bytes;
        body = r.body;
        expect(r.headers.get('retry-after')).toBe('10');
      } else {
        expect(r.status, JSON.stringify(r.body)).toBe(202);
        await decided(r.body.id);
      }
    }
    expect(refusedBytes, 'the store never filled').not.toBeNull();
    assertApiResponse('/v1/inspections', 'post', 507, body);
    expect(body.error.code).toBe('insufficient_storage');
    expect(body.error.message).toMatch(/^the image store holds .* of its 1\.9 MiB quota \(VISQ_STORAGE_QUOTA\) and has no room for .* more; the pruner removes what the retention policy allows/);
    // Nothing half-done: no file, no inspection.
    expect(existsSync(imagePath(sha256(refusedBytes!)))).toBe(false);
    const serial = (await database.db.query('SELECT count(*)::int AS n FROM inspections i JOIN inspection_images ii ON ii.inspection_id = i.id WHERE ii.sha256 = $1', [sha256(refusedBytes!)])).rows[0].n;
    expect(serial).toBe(0);
    expect(await storeOnDisk()).toBeLessThanOrEqual(quota + 20_000);
    const ready = await fetch(`${visq.baseUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.json()).checks.storage).toMatch(/^uploads are refused \(507\): the image store holds/);

    // Released, the lot's PASS images may go: the camera's retry is taken.
    expect((await send('POST', '/v1/lots/LOT-A/release', emil, { reason: 'audit done' })).status).toBe(200);
    const { id, refused } = await upload(refusedBytes!, { serial: 'SN-F-last', partNumber: 'PN-1001', lotId: 'LOT-A' }, 'fill-last');
    expect(refused).toBeGreaterThanOrEqual(0);
    expect((await decided(id)).verdict).toBe('FAIL');
    await until(async () => (await fetch(`${visq.baseUrl}/readyz`)).status === 200, 'ready again', 30_000);
  });

  it('two processes never prune at once: a second one stands by, and takes over when the leader dies', async () => {
    const second = await startVisq('api', env);
    try {
      const leads = (p: VisqProcess) => p.json().some((l) => l.msg === 'leading the image pruner');
      expect(leads(visq)).toBe(true);
      expect(leads(second)).toBe(false);
      visq.child.kill('SIGKILL');
      await visq.exited;
      await until(() => leads(second), 'the second process to lead the pruner', 30_000);
      const label = `${os.hostname()}:${second.child.pid}`;
      await until(async () => (await database.db.query('SELECT 1 FROM prune_runs WHERE process = $1', [label])).rowCount! > 0, 'a run by the new leader', 30_000);
      const runs = await database.db.query<{ process: string }>('SELECT DISTINCT process FROM prune_runs');
      expect(runs.rows.map((r) => r.process).sort()).toEqual([`${os.hostname()}:${visq.child.pid}`, label].sort());
      const overlapping = await database.db.query(
        'SELECT a.id, b.id FROM prune_runs a JOIN prune_runs b ON a.id < b.id AND a.started_at < b.finished_at AND b.started_at < a.finished_at');
      expect(overlapping.rows).toEqual([]);
    } finally {
      await second.stop();
    }
  });

  it('a pruner killed mid-run leaves no record pointing at a missing file without its removal note; the next run finishes', async () => {
    // 300 decided PASS parts, seeded directly: the pruner has much to remove, in pages.
    const seeded: string[] = [];
    const station = (await database.db.query<{ station_id: string }>('SELECT station_id FROM stations LIMIT 1')).rows[0]!.station_id;
    await database.db.query(`INSERT INTO lots (lot_id) VALUES ('LOT-K')`);
    for (let i = 0; i < 300; i++) {
      const bytes = randomBytes(1000);
      const sha = sha256(bytes);
      await mkdir(path.dirname(imagePath(sha)), { recursive: true });
      await writeFile(imagePath(sha), bytes);
      seeded.push(sha);
    }
    await database.db.query(
      `WITH s AS (SELECT sha256, gen_random_uuid() AS id, n FROM unnest($2::text[]) WITH ORDINALITY AS s(sha256, n)),
       ins AS (
         INSERT INTO inspections (id, station_id, site, line, serial, part_number, lot_id, captured_at, plan_part_number, plan_operation, plan_version, status, verdict, decided_at, characteristics, models)
         SELECT id, $1, 'site1', 'line-r', 'SN-K-' || n, 'PN-1001', 'LOT-K', now(), 'PN-1001', '', 1, 'done', 'PASS', now(), '[]', '[]' FROM s),
       img AS (INSERT INTO inspection_images (inspection_id, view, sha256, media_type, width, height) SELECT id, 0, sha256, 'image/png', 1, 1 FROM s)
       INSERT INTO stored_files (sha256, bytes, retention_class) SELECT sha256, 1000, 'pass' FROM s`,
      [station, seeded]);
    const notes = async () => (await database.db.query<{ n: number }>('SELECT count(*)::int AS n FROM stored_files WHERE removed_at IS NOT NULL')).rows[0]!.n;
    const before = await notes();
    /** Every file an inspection refers to exists, or its removal is recorded. */
    const missingWithoutNote = async () => {
      const r = await database.db.query<{ sha256: string }>(
        `SELECT sha256 FROM (SELECT sha256 FROM inspection_images UNION SELECT sha256 FROM inspection_artifacts) s
         WHERE NOT EXISTS (SELECT 1 FROM stored_files f WHERE f.sha256 = s.sha256 AND f.removed_at IS NOT NULL)`);
      return r.rows.map((row) => row.sha256).filter((sha) => !existsSync(imagePath(sha)));
    };
    expect(await missingWithoutNote()).toEqual([]);

    // No process leads now; the command line prunes, with a quota that wants everything it may remove gone, and is killed at its first removal.
    const pruneEnv = { ...env, VISQ_STORAGE_QUOTA: '10kB', VISQ_LOG_LEVEL: 'warn' };
    const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'app', 'cli.js'), 'storage', 'prune'], { env: { PATH: process.env.PATH, ...pruneEnv }, cwd: repoRoot, stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await until(async () => (await notes()) > before || child.exitCode !== null, 'the first removal recorded', 30_000, 5);
    child.kill('SIGKILL');
    await exited;
    const afterKill = await notes();
    expect(afterKill).toBeGreaterThan(before);
    expect(await missingWithoutNote()).toEqual([]);

    // A removal recorded whose file is still there, as a kill between the two leaves it.
    const pendingSha = seeded.find((sha) => existsSync(imagePath(sha)))!;
    await database.db.query(`UPDATE stored_files SET removed_at = now(), removal_policy = 'quota', removal_reason = 'killed before unlink' WHERE sha256 = $1 AND removed_at IS NULL`, [pendingSha]);
    const finished = await cli(['storage', 'prune'], pruneEnv);
    expect(finished.code, finished.stderr).toBe(0);
    expect(await missingWithoutNote()).toEqual([]);
    // Every recorded removal was carried out, the interrupted ones included.
    const pending = await database.db.query('SELECT sha256 FROM stored_files WHERE removed_at IS NOT NULL AND unlinked_at IS NULL');
    expect(pending.rows).toEqual([]);
    for (const sha of seeded) expect(existsSync(imagePath(sha))).toBe(false);
    expect(JSON.parse(finished.stdout)).toMatchObject({ dryRun: false, removed: { files: expect.any(Number) } });
  });
});
