import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * visq run as a database role that does not own its tables (VISQ_MIGRATION_DATABASE_URL migrates):
 * the whole pipeline works with the rights it is granted, nothing that decides or traces a part can
 * be changed with that role's SQL, and what goes around it (an account changed with plain SQL, a
 * superuser turning the triggers off) is named by `visq audit verify`.
 */
const png = (dir: string) => readFileSync(fixture('images', 'machined-surface', dir, readdirSync(fixture('images', 'machined-surface', dir)).filter((f) => f.endsWith('.png')).sort()[0]!));

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let appRole: string;
let appUrl: string;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let app: pg.Client;
let owner: pg.Client;
const ids = { good: '', bad: '' };

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  appRole = `visq_app_${randomBytes(4).toString('hex')}`;
  const u = new URL(database.url);
  u.username = appRole;
  u.password = randomBytes(12).toString('hex');
  appUrl = u.toString();
  // No Redis: the queue lives in PostgreSQL too, in a schema the application's role makes itself.
  ({ env, cleanup } = await testEnv({ databaseUrl: appUrl, mqttUrl: inject('mqttUrl') }));
  const migrated = await cli(['migrate'], { ...env, VISQ_MIGRATION_DATABASE_URL: database.url });
  expect(migrated.code, migrated.stderr).toBe(0);
  // Everything else runs with the application's role alone.
  await cliJson(['station', 'add', 'cam-r', '--line', 'line-r'], env);
  const added = await cli(['user', 'add', 'rita', '--role', 'reviewer', '--password-stdin'], env, 'rita-signs-here-42\n');
  expect(added.code, added.stderr).toBe(0);
  const planFile = path.join(os.tmpdir(), `visq-plan-roles-${process.pid}.json`);
  writeFileSync(planFile, JSON.stringify({ ...JSON.parse(readFileSync(fixture('plans', 'PN-1001.json'), 'utf8')), confirmFail: true }));
  expect((await cli(['plan', 'apply', planFile], env)).code).toBe(0);
  const { apiKey } = await cliJson(['station', 'rotate-key', 'cam-r'], env);
  const { token } = await cliJson(['user', 'add', 'mes-bot', '--role', 'reviewer', '--integration'], env);
  visq = await startVisq('start', env);
  for (const kind of ['good', 'bad'] as const) {
    const r = await postImage(visq.baseUrl, apiKey, [{ bytes: png(kind === 'good' ? 'good' : 'bad/scratch') }], { serial: `SN-${kind}`, partNumber: 'PN-1001', lotId: 'LOT-R1', operator: 'olga' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    ids[kind] = r.body.id;
  }
  for (const id of Object.values(ids)) {
    await until(async () => (await getJson(`${visq.baseUrl}/v1/inspections/${id}`, token)).body.status === 'done', `inspection ${id} decided`, 60_000);
  }
  app = new pg.Client({ connectionString: appUrl });
  owner = new pg.Client({ connectionString: database.url });
  await app.connect();
  await owner.connect();
}, 180_000);

afterAll(async () => {
  await visq?.stop();
  await app?.end();
  await owner?.end();
  await database?.drop();
  const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${appRole}`).catch(() => {});
  await admin.end();
  await cleanup?.();
});

const verify = async () => {
  const r = await cli(['audit', 'verify'], env);
  return { code: r.code, report: JSON.parse(r.stdout), stderr: r.stderr };
};

describe('visq as a role that does not own its tables', () => {
  it('the migration made the role, which is no superuser, owns nothing, and ran the pipeline', async () => {
    const r = await owner.query(`SELECT rolsuper, (SELECT count(*)::int FROM pg_tables WHERE schemaname = 'public' AND tableowner = $1) AS owned FROM pg_roles WHERE rolname = $1`, [appRole]);
    expect(r.rows).toEqual([{ rolsuper: false, owned: 0 }]);
    const decided = await app.query('SELECT serial, verdict, needs_review FROM inspections ORDER BY serial');
    expect(decided.rows).toEqual([{ serial: 'SN-bad', verdict: 'FAIL', needs_review: true }, { serial: 'SN-good', verdict: 'PASS', needs_review: false }]);
    const { code, report } = await verify();
    expect(code).toBe(0);
    expect(report).toMatchObject({ intact: true, messages: 2, problems: [], warnings: [] });
    expect(report.lastMessageHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('cannot turn the triggers off, nor change what traces or decides a part', async () => {
    await expect(app.query('ALTER TABLE inspections DISABLE TRIGGER ALL')).rejects.toThrow(/must be owner/);
    await expect(app.query('SET session_replication_role = replica')).rejects.toThrow(/permission denied/);
    await expect(app.query('UPDATE inspections SET needs_review = false WHERE id = $1', [ids.bad])).rejects.toThrow(/decided and cannot be changed/);
    for (const change of ["operator = 'mallory'", "line = 'line-x'", "work_order = 'WO-9'", "captured_at = now()", 'plan_version = plan_version + 1']) {
      await expect(app.query(`UPDATE inspections SET ${change} WHERE id = $1`, [ids.good])).rejects.toThrow(/cannot be changed/);
    }
    await expect(app.query('DELETE FROM inspections WHERE id = $1', [ids.good])).rejects.toThrow(/cannot be deleted/);
    await expect(app.query("UPDATE inspection_images SET sha256 = repeat('0', 64)")).rejects.toThrow(/permission denied/);
    await expect(app.query("UPDATE outbox SET payload = '{}'")).rejects.toThrow(/permission denied/);
    await expect(app.query('DELETE FROM outbox')).rejects.toThrow(/permission denied/);
    await expect(app.query('DELETE FROM audit_trail')).rejects.toThrow(/permission denied/);
    // The relay's one change to a message.
    await app.query('UPDATE outbox SET sent_at = sent_at');
    expect((await verify()).code).toBe(0);
  });

  it('an account changed with plain SQL is named: a role raised, a station moved, a token replaced', async () => {
    await app.query("UPDATE users SET role = 'admin' WHERE username = 'rita'");
    await app.query("UPDATE stations SET line = 'line-x' WHERE station_id = 'cam-r'");
    await app.query("UPDATE users SET token_hash = sha256('chosen') WHERE username = 'mes-bot'");
    const { code, report, stderr } = await verify();
    expect(code).toBe(1);
    expect(report.problems).toEqual([
      expect.stringMatching(/^station cam-r: its line is not what audit entry \d+ recorded: changed outside visq$/),
      expect.stringMatching(/^user mes-bot: its API token is not what audit entry \d+ recorded/),
      expect.stringMatching(/^user rita: its role is not what audit entry \d+ recorded/),
    ]);
    expect(stderr).toMatch(/visq: audit: user rita: its role/);
    await app.query("UPDATE users SET role = 'reviewer' WHERE username = 'rita'");
    await app.query("UPDATE stations SET line = 'line-r' WHERE station_id = 'cam-r'");
    expect((await verify()).report.problems).toHaveLength(1);
  });

  it('a superuser going around the triggers is named: a verdict flipped, a part dropped from review, an image swapped, a message edited', async () => {
    await owner.query('SET session_replication_role = replica');
    await owner.query("UPDATE inspections SET verdict = 'PASS', needs_review = false WHERE id = $1", [ids.bad]);
    await owner.query("UPDATE inspection_images SET sha256 = repeat('0', 64) WHERE inspection_id = $1", [ids.good]);
    const message = (await owner.query<{ chain_pos: number }>('SELECT chain_pos FROM outbox WHERE inspection_id = $1', [ids.good])).rows[0]!.chain_pos;
    await owner.query(`UPDATE outbox SET payload = replace(payload::text, '"olga"', '"mallory"')::json WHERE inspection_id = $1`, [ids.good]);
    const { code, report } = await verify();
    expect(code).toBe(1);
    expect(report.problems).toEqual(expect.arrayContaining([
      `outbox message ${message} (inspection ${ids.good}) was changed: it no longer matches its hash`,
      expect.stringMatching(new RegExp(`^inspection ${ids.bad} no longer matches its verdict message \\(outbox message \\d+\\) in modelVerdict, awaitingReview: changed outside visq$`)),
      expect.stringMatching(new RegExp(`^inspection ${ids.good} no longer matches its verdict message \\(outbox message ${message}\\) in operator, images: changed outside visq$`)),
    ]));

    await owner.query('DELETE FROM outbox WHERE inspection_id = $1', [ids.bad]);
    expect((await verify()).report.problems).toContain(`inspection ${ids.bad} is decided but has no verdict message: its message was deleted`);
  });
});
