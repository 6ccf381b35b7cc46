import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { assertApiResponse, assertVerdictMessage } from '../support/contract.js';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, MesClient, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';
import { SessionClient, SseStream } from '../support/workbench.js';

/**
 * The workbench's API as a browser uses it: sign-in sessions with CSRF protection, signed
 * dispositions, the live review queue, lot statistics and reports, plan versions, and the audit
 * trail with `visq audit verify`. On real PostgreSQL and Mosquitto, through `visq start`.
 */
const pngs = (dir: string) => readdirSync(fixture('images', 'machined-surface', dir)).filter((f) => f.endsWith('.png')).sort()
  .map((f) => readFileSync(fixture('images', 'machined-surface', dir, f)));
const good = pngs('good');
const defects = pngs('bad/scratch');

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let mes: MesClient;
let apiKey: string;
let tokenOnly: string;
const password = { rita: 'rita-signs-here-42', emil: 'emil-plans-things-7', ada: 'ada-runs-the-place-1' };

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl') }));
  expect((await cli(['migrate'], env)).code).toBe(0);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-7', '--line', 'line-b'], env));
  for (const [user, role, name] of [['rita', 'reviewer', 'Rita Reviewer'], ['emil', 'engineer', 'Emil Engineer'], ['ada', 'admin', 'Ada Admin']] as const) {
    const r = await cli(['user', 'add', user, '--role', role, '--name', name, '--password-stdin'], env, `${password[user]}\n`);
    expect(r.code, r.stderr).toBe(0);
  }
  ({ token: tokenOnly } = await cliJson(['user', 'add', 'mes-bot', '--role', 'reviewer', '--integration'], env));
  // Every FAIL waits for a person to confirm it.
  const planFile = path.join(os.tmpdir(), `visq-plan-${process.pid}.json`);
  writeFileSync(planFile, JSON.stringify({ ...JSON.parse(readFileSync(fixture('plans', 'PN-1001.json'), 'utf8')), confirmFail: true }));
  const applied = await cli(['plan', 'apply', planFile, '--reason', 'first release'], env);
  expect(applied.code, applied.stderr).toBe(0);
  mes = await MesClient.connect(inject('mqttUrl'), [`${env.VISQ_TOPIC_PREFIX}/#`]);
  visq = await startVisq('start', env);
});

afterAll(async () => {
  await visq?.stop();
  await mes?.end();
  await database?.drop();
  await cleanup?.();
});

const inspect = async (bytes: Buffer, serial: string, lotId = 'LOT-W1') => {
  const r = await postImage(visq.baseUrl, apiKey, [{ bytes }], { serial, partNumber: 'PN-1001', lotId });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.id as string;
};
const decided = (id: string) => until(async () => (await getJson(`${visq.baseUrl}/v1/inspections/${id}`, tokenOnly)).body.status === 'done', `inspection ${id} decided`, 30_000);

describe('sign-in sessions', () => {
  it('a wrong password or unknown user gets the same 401; the right one a Secure, HttpOnly, SameSite=Strict cookie', async () => {
    for (const body of [{ username: 'rita', password: 'not-her-password' }, { username: 'nobody', password: 'whatever-it-is' }]) {
      const res = await fetch(`${visq.baseUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(401);
      expect((await res.json()).error).toEqual({ code: 'invalid_credentials', message: 'the username or password is not correct' });
      expect(res.headers.getSetCookie()).toEqual([]);
    }
    const rita = await SessionClient.signIn(visq.baseUrl, 'rita', password.rita);
    assertApiResponse('/v1/session', 'post', 200, rita.me);
    expect(rita.setCookie).toMatch(/^visq_session=[A-Za-z0-9_-]{43};/);
    expect(rita.setCookie).toMatch(/HttpOnly/);
    expect(rita.setCookie).toMatch(/Secure/);
    expect(rita.setCookie).toMatch(/SameSite=Strict/);
    expect(rita.me).toEqual({ username: 'rita', role: 'reviewer', name: 'Rita Reviewer', csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect((await rita.get('/v1/session')).body).toEqual(rita.me);
    // The cookie secret is stored only as a hash.
    const stored = await database.db.query('SELECT token_hash FROM sessions');
    expect(stored.rows.map((r) => r.token_hash.toString('base64url'))).not.toContain(rita.cookie.split('=')[1]);
  });

  it('a request that changes something needs the session\'s CSRF token', async () => {
    const rita = await SessionClient.signIn(visq.baseUrl, 'rita', password.rita);
    const without = await rita.send('DELETE', '/v1/session', undefined, { csrf: null });
    expect(without.status).toBe(403);
    expect(without.body.error.code).toBe('csrf_token_invalid');
    const wrong = await rita.send('DELETE', '/v1/session', undefined, { csrf: 'x'.repeat(43) });
    expect(wrong.status).toBe(403);
    expect((await rita.get('/v1/session')).status).toBe(200);
    expect((await rita.send('DELETE', '/v1/session')).status).toBe(204);
    expect((await rita.get('/v1/session')).body.error.code).toBe('session_expired');
  });

  it('repeated failed sign-ins are slowed down (429 with Retry-After)', async () => {
    const attempt = () => fetch(`${visq.baseUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'guess-me', password: 'wrong-password' }) });
    const statuses = [];
    for (let i = 0; i < 11; i++) statuses.push((await attempt()).status);
    expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
    const last = await attempt();
    expect(last.status).toBe(429);
    expect(last.headers.get('retry-after')).toBe('900');
    // The count lives in the database: another API process (or this one restarted) holds to it.
    const other = await startVisq('api', env);
    try {
      const elsewhere = await fetch(`${other.baseUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'guess-me', password: 'wrong-password' }) });
      expect(elsewhere.status).toBe(429);
    } finally {
      await other.stop();
    }
  });

  it.each([
    ['an age beyond any integer', '/v1/review?olderThanSeconds=99999999999'],
    ['a plan version beyond any integer', '/v1/quality-plans/PN-1001?version=99999999999'],
    ['diff versions beyond any integer', '/v1/quality-plans/PN-1001/diff?from=1&to=4294967296'],
    ['an audit page beyond any integer', '/v1/audit?before=99999999999'],
    ['a NUL byte in a lot id', '/v1/lots/LOT%00X'],
    ['a NUL byte in a lot summary', '/v1/lots/LOT%00X/summary'],
    ['a NUL byte in a part number', '/v1/quality-plans/PN%001001'],
    ['a NUL byte in a plan operation', '/v1/quality-plans/PN-1001?operation=fin%00al'],
    ['a NUL byte in a review filter', '/v1/review?lotId=L%00T'],
    ['a right-to-left override in a review filter', '/v1/review?partNumber=PN-%E2%80%AE1001'],
    ['a NUL byte in a part history query', '/v1/inspections?partNumber=PN-1001&serial=S%00N'],
  ])('answers %s with 400, not 500', async (_name, url) => {
    const emil = await SessionClient.signIn(visq.baseUrl, 'emil', password.emil);
    const res = await emil.get(url);
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.code).toMatch(/^invalid_/);
  });

  it('a NUL byte in the username of a sign-in is a 400, not a 500', async () => {
    const res = await fetch(`${visq.baseUrl}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ri\u0000ta', password: 'whatever-it-is' }) });
    expect(res.status).toBe(400);
  });

  it('roles are enforced on the server: reviewers cannot change plans or read the audit trail; stations only post images', async () => {
    const rita = await SessionClient.signIn(visq.baseUrl, 'rita', password.rita);
    const plan = (await rita.get('/v1/quality-plans/PN-1001')).body.plan;
    expect((await rita.send('PUT', '/v1/quality-plans/PN-1001', plan)).status).toBe(403);
    expect((await rita.get('/v1/audit')).status).toBe(403);
    expect((await getJson(`${visq.baseUrl}/v1/review`, apiKey)).status).toBe(403);
    expect((await getJson(`${visq.baseUrl}/v1/session`, apiKey)).status).toBe(403);
  });
});

describe('review and signed dispositions', () => {
  it('a flagged part reaches the live queue; a wrong password signs nothing; the right one makes the verdict final at the MES', async () => {
    const rita = await SessionClient.signIn(visq.baseUrl, 'rita', password.rita);
    const events = await SseStream.open(`${visq.baseUrl}/v1/events`, rita.cookie);
    try {
      const id = await inspect(defects[0]!, 'SN-W-001');
      await events.waitFor((e) => e.event === 'review' && e.data.id === id && e.data.change === 'flagged');
      const queue = (await rita.get('/v1/review')).body.inspections;
      expect(queue.map((d: any) => d.id)).toContain(id);

      const wrong = await rita.send('POST', `/v1/inspections/${id}/disposition`, { decision: 'scrap', reason: 'deep scratch', password: 'not-my-password' });
      expect(wrong.status).toBe(403);
      expect(wrong.body.error.code).toBe('invalid_signature');
      const unsigned = await rita.send('POST', `/v1/inspections/${id}/disposition`, { decision: 'scrap', reason: 'deep scratch' });
      expect(unsigned.body.error.code).toBe('invalid_signature');
      expect((await rita.get(`/v1/inspections/${id}`)).body.final).toBe(false);

      const signed = await rita.send('POST', `/v1/inspections/${id}/disposition`, { decision: 'scrap', reason: 'deep scratch', password: password.rita });
      expect(signed.status).toBe(200);
      assertApiResponse('/v1/inspections/{id}/disposition', 'post', 200, signed.body);
      expect(signed.body).toMatchObject({ verdict: 'FAIL', final: true });
      expect(signed.body.disposition).toEqual({
        decision: 'scrap', reason: 'deep scratch', by: 'rita', name: 'Rita Reviewer', meaning: 'I reject this part as scrap', at: expect.any(String),
      });
      await events.waitFor((e) => e.data.id === id && e.data.change === 'disposed');
      await until(() => mes.verdicts().some((v) => v.id === id && v.final), 'the final verdict at the MES', 30_000);
      const final = mes.verdicts().find((v) => v.id === id && v.final);
      assertVerdictMessage(final);
      const first = mes.verdicts().find((v) => v.id === id && !v.final);
      expect(final).toMatchObject({ verdict: 'FAIL', supersedes: first.messageId, disposition: { by: 'rita', name: 'Rita Reviewer', meaning: 'I reject this part as scrap' } });
      expect((await rita.get('/v1/review')).body.inspections.map((d: any) => d.id)).not.toContain(id);
    } finally {
      events.close();
    }
  });

  it('an account without a password signs with its API token, and the record says so', async () => {
    const id = await inspect(defects[1]!, 'SN-W-002');
    await decided(id);
    const withPassword = await fetch(`${visq.baseUrl}/v1/inspections/${id}/disposition`, {
      method: 'POST', headers: { authorization: `Bearer ${tokenOnly}`, 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'accept', reason: 'cosmetic only', password: 'anything-at-all' }),
    });
    expect(withPassword.status).toBe(403);
    const res = await fetch(`${visq.baseUrl}/v1/inspections/${id}/disposition`, {
      method: 'POST', headers: { authorization: `Bearer ${tokenOnly}`, 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'accept', reason: 'cosmetic only' }),
    });
    expect(res.status).toBe(200);
    expect((await res.json()).disposition).toMatchObject({ by: 'mes-bot', name: 'mes-bot', meaning: 'I accept this part as conforming' });
    const row = await database.db.query('SELECT signed_with FROM dispositions WHERE inspection_id = $1', [id]);
    expect(row.rows[0].signed_with).toBe('token');
  });

  it('guessing a signer\'s password is slowed down: ten failed signatures, then 429', async () => {
    const id = await inspect(defects[0]!, 'SN-W-004', 'LOT-W2');
    await decided(id);
    const emil = await SessionClient.signIn(visq.baseUrl, 'emil', password.emil);
    const attempt = (pw: string) => emil.send('POST', `/v1/inspections/${id}/disposition`, { decision: 'accept', reason: 'guess', password: pw });
    for (let i = 0; i < 10; i++) expect((await attempt(`wrong-guess-${i}`)).status).toBe(403);
    const locked = await attempt(password.emil);
    expect(locked.status).toBe(429);
    expect((await emil.get(`/v1/inspections/${id}`)).body.final).toBe(false);
    expect(visq.json().filter((l) => l.msg === 'disposition signature refused' && l.username === 'emil')).toHaveLength(10);
  });

  it("a part's history lists every inspection of that part number and serial", async () => {
    const again = await inspect(good[0]!, 'SN-W-001');
    await decided(again);
    const history = (await getJson(`${visq.baseUrl}/v1/inspections?partNumber=PN-1001&serial=SN-W-001`, tokenOnly)).body.inspections;
    assertApiResponse('/v1/inspections', 'get', 200, { inspections: history });
    expect(history).toHaveLength(2);
    expect(history[0].id).toBe(again);
    expect(history[1].final).toBe(true);
    expect((await getJson(`${visq.baseUrl}/v1/inspections?serial=SN-W-001`, tokenOnly)).status).toBe(400);
  });
});

describe('quality plans', () => {
  it('an engineer stores a new version with a reason; versions and their differences are listed; the next inspection uses it', async () => {
    const emil = await SessionClient.signIn(visq.baseUrl, 'emil', password.emil);
    const current = (await emil.get('/v1/quality-plans/PN-1001')).body;
    const invalid = await emil.send('PUT', '/v1/quality-plans/PN-1001?reason=oops', { ...current.plan, characteristics: [{ ...current.plan.characteristics[0], measure: 'no_such_measure' }] });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('invalid_plan');
    const next = { ...current.plan, characteristics: [{ ...current.plan.characteristics[0], usl: 0.45 }] };
    const stored = await emil.send('PUT', `/v1/quality-plans/PN-1001?reason=${encodeURIComponent('tighter after customer complaint 4711')}`, next);
    expect(stored.status).toBe(201);
    assertApiResponse('/v1/quality-plans/{partNumber}', 'put', 201, stored.body);
    expect(stored.body).toMatchObject({ version: 2, createdBy: 'emil', reason: 'tighter after customer complaint 4711' });
    const versions = (await emil.get('/v1/quality-plans/PN-1001/versions')).body.versions;
    expect(versions.map((v: any) => [v.version, v.createdBy, v.reason])).toEqual([[2, 'emil', 'tighter after customer complaint 4711'], [1, 'cli:' + os.userInfo().username, 'first release']]);
    assertApiResponse('/v1/quality-plans/{partNumber}/versions', 'get', 200, { versions });
    assertApiResponse('/v1/quality-plans', 'get', 200, (await emil.get('/v1/quality-plans')).body);
    const diff = (await emil.get('/v1/quality-plans/PN-1001/diff?from=1&to=2')).body;
    assertApiResponse('/v1/quality-plans/{partNumber}/diff', 'get', 200, diff);
    expect(diff.changes).toEqual([{ path: 'characteristics.surface_anomaly.usl', kind: 'changed', from: 0.5, to: 0.45 }]);
    const id = await inspect(good[1]!, 'SN-W-003');
    await decided(id);
    expect((await emil.get(`/v1/inspections/${id}`)).body.plan.version).toBe(2);
  });

  it('lists the models and what they measure, for the plan editor', async () => {
    const { body } = await getJson(`${visq.baseUrl}/v1/models`, tokenOnly);
    assertApiResponse('/v1/models', 'get', 200, body);
    const models = body.models;
    expect(models).toContainEqual(expect.objectContaining({ id: 'surface-anomaly', task: 'anomaly', measures: ['anomaly_score'] }));
  });
});

describe('lots', () => {
  it('summary: counts, yield, Pareto and p-chart of what was decided', async () => {
    const s = (await getJson(`${visq.baseUrl}/v1/lots/LOT-W1/summary`, tokenOnly)).body;
    assertApiResponse('/v1/lots/{lotId}/summary', 'get', 200, s);
    const lots = (await getJson(`${visq.baseUrl}/v1/lots`, tokenOnly)).body;
    assertApiResponse('/v1/lots', 'get', 200, lots);
    expect(lots.lots[0]).toMatchObject({ lotId: 'LOT-W1', inspections: 4, partNumbers: ['PN-1001'] });
    expect(s.counts.PASS + s.counts.FAIL + s.counts.REVIEW + s.counts.pending).toBe(4);
    expect(s.counts.FAIL).toBeGreaterThanOrEqual(1);
    expect(s.yield).toBeCloseTo(s.counts.PASS / s.decided, 10);
    expect(s.pareto[0]).toEqual({ characteristic: 'surface_anomaly', count: s.counts.FAIL });
    expect(s.pChart.points.reduce((n: number, p: any) => n + p.n, 0)).toBe(s.decided);
    expect((await getJson(`${visq.baseUrl}/v1/lots/NO-SUCH-LOT/summary`, tokenOnly)).status).toBe(404);
  });

  it('traceability report as CSV (every part, image hash, model, plan version, verdict, signer) and as PDF', async () => {
    const csv = await fetch(`${visq.baseUrl}/v1/lots/LOT-W1/report.csv`, { headers: { authorization: `Bearer ${tokenOnly}` } });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="?lot-LOT-W1-traceability.csv"?$/);
    const [header, ...rows] = (await csv.text()).trim().split('\n');
    expect(header).toMatch(/^inspection_id,received_at,.*image_sha256,models,model_sha256,plan_version,model_verdict,verdict,final,.*signed_by,signer_name,signature_meaning,signed_at$/);
    expect(rows).toHaveLength(4);
    const scrapped = rows.find((r) => r.includes('Rita Reviewer'))!;
    expect(scrapped).toMatch(/SN-W-001/);
    expect(scrapped).toMatch(/surface-anomaly@/);
    expect(scrapped).toMatch(/I reject this part as scrap/);
    const pdf = await fetch(`${visq.baseUrl}/v1/lots/LOT-W1/report.pdf`, { headers: { authorization: `Bearer ${tokenOnly}` } });
    expect(pdf.headers.get('content-type')).toBe('application/pdf');
    const bytes = Buffer.from(await pdf.arrayBuffer());
    expect(bytes.subarray(0, 5).toString()).toBe('%PDF-');
    expect(bytes.length).toBeGreaterThan(1000);
  });
});

describe('audit trail', () => {
  it('every change is recorded with who, what and why, each entry chained to the one before', async () => {
    const emil = await SessionClient.signIn(visq.baseUrl, 'emil', password.emil);
    const page = (await emil.get('/v1/audit?limit=1000')).body;
    assertApiResponse('/v1/audit', 'get', 200, page);
    const entries = page.entries.reverse();
    const cliUser = `cli:${os.userInfo().username}`;
    expect(entries.map((e: any) => [e.seq, e.actor, e.action, e.entity])).toEqual([
      [1, cliUser, 'station.add', 'station:cam-7'],
      [2, cliUser, 'user.add', 'user:rita'],
      [3, cliUser, 'user.add', 'user:emil'],
      [4, cliUser, 'user.add', 'user:ada'],
      [5, cliUser, 'user.add', 'user:mes-bot'],
      [6, cliUser, 'plan.version', 'quality_plan:PN-1001::1'],
      [7, 'rita', 'inspection.disposition', expect.stringMatching(/^inspection:/)],
      [8, 'mes-bot', 'inspection.disposition', expect.stringMatching(/^inspection:/)],
      [9, 'emil', 'plan.version', 'quality_plan:PN-1001::2'],
    ]);
    expect(entries[6]).toMatchObject({ reason: 'deep scratch', details: { decision: 'scrap', signer: 'Rita Reviewer', signedWith: 'password' } });
    expect(entries[8].reason).toBe('tighter after customer complaint 4711');
    for (let i = 1; i < entries.length; i++) expect(entries[i].prevHash).toBe(entries[i - 1].hash);
    // Ordinary database roles cannot rewrite it.
    await expect(database.db.query("UPDATE audit_trail SET reason = 'x' WHERE seq = 7")).rejects.toThrow(/append-only/);
    await expect(database.db.query('TRUNCATE audit_trail')).rejects.toThrow(/append-only/);
  });

  it('`visq audit verify` passes on the untouched trail and names a changed or deleted entry', async () => {
    const ok = await cli(['audit', 'verify'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ intact: true, entries: 9, problems: [] });

    // Someone with superuser rights goes around the trigger.
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query('ALTER TABLE audit_trail DISABLE TRIGGER audit_trail_append_only');
      await admin.query("UPDATE audit_trail SET details = jsonb_set(details, '{decision}', '\"accept\"') WHERE seq = 7");
      const changed = await cli(['audit', 'verify'], env);
      expect(changed.code).toBe(1);
      const disposed = (await database.db.query("SELECT entity FROM audit_trail WHERE seq = 7")).rows[0].entity.slice('inspection:'.length);
      expect(JSON.parse(changed.stdout).problems).toEqual([
        'entry 7 was changed: its content no longer matches its hash',
        `disposition of inspection ${disposed} does not match audit entry 7: one of them was changed`,
      ]);
      expect(changed.stderr).toMatch(/entry 7 was changed/);

      await admin.query("UPDATE audit_trail SET details = jsonb_set(details, '{decision}', '\"scrap\"') WHERE seq = 7");
      expect((await cli(['audit', 'verify'], env)).code).toBe(0);

      // The signed record itself, changed behind the trail's back.
      await expect(database.db.query("UPDATE dispositions SET decision = 'accept'")).rejects.toThrow(/append-only/);
      await admin.query('ALTER TABLE dispositions DISABLE TRIGGER dispositions_append_only');
      await admin.query("UPDATE dispositions SET decision = 'accept', final_verdict = 'PASS' WHERE inspection_id = $1", [disposed]);
      const record = await cli(['audit', 'verify'], env);
      expect(record.code).toBe(1);
      expect(JSON.parse(record.stdout).problems).toEqual([`disposition of inspection ${disposed} does not match audit entry 7: one of them was changed`]);
      await admin.query("UPDATE dispositions SET decision = 'scrap', final_verdict = 'FAIL' WHERE inspection_id = $1", [disposed]);

      await admin.query('DELETE FROM audit_trail WHERE seq = 3');
      const deleted = await cli(['audit', 'verify'], env);
      expect(deleted.code).toBe(1);
      expect(JSON.parse(deleted.stdout).problems).toEqual(['entry 3 is missing (deleted): the sequence jumps from 2 to 4', 'user emil has no audit entry: its entry was deleted']);

      // The newest entry leaves no gap behind, but its record is still there without it.
      await admin.query('DELETE FROM audit_trail WHERE seq = 9');
      const tail = JSON.parse((await cli(['audit', 'verify'], env)).stdout);
      expect(tail.problems).toContain('quality plan PN-1001 version 2 has no audit entry: its entry was deleted');
    } finally {
      await admin.end();
    }
  });
});

describe('managing credentials', () => {
  const bearer = (token: string, url: string) => fetch(`${visq.baseUrl}${url}`, { headers: { authorization: `Bearer ${token}` } });
  const auditActions = async (entity: string) => (await database.db.query('SELECT action, actor FROM audit_trail WHERE entity = $1 ORDER BY seq', [entity])).rows;

  it('an account without a password that is not an integration cannot sign with its token alone', async () => {
    const { token } = await cliJson(['user', 'add', 'tom', '--role', 'reviewer'], env);
    const id = await inspect(defects[0]!, 'SN-W-TOM');
    await decided(id);
    const res = await fetch(`${visq.baseUrl}/v1/inspections/${id}/disposition`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ decision: 'accept', reason: 'looks fine' }),
    });
    expect(res.status).toBe(403);
    expect((await res.json()).error.message).toMatch(/not marked as an integration/);
  });

  it('an admin disables and enables a person: token, session and sign-in are refused meanwhile; each change is audited', async () => {
    const ada = await SessionClient.signIn(visq.baseUrl, 'ada', password.ada);
    const created = await ada.send('POST', '/v1/users', { username: 'nina', role: 'reviewer', name: 'Nina N', password: 'nina-reviews-parts-9' });
    expect(created.status).toBe(201);
    assertApiResponse('/v1/users', 'post', 201, created.body);
    expect(created.body).toMatchObject({ username: 'nina', role: 'reviewer', token: expect.stringMatching(/^visq_/), tokenExpiresAt: expect.any(String) });
    const nina = await SessionClient.signIn(visq.baseUrl, 'nina', 'nina-reviews-parts-9');
    expect((await bearer(created.body.token, '/v1/review')).status).toBe(200);

    expect((await ada.send('PATCH', '/v1/users/nina', { disabled: true, reason: 'left the company' })).status).toBe(200);
    expect((await bearer(created.body.token, '/v1/review')).status).toBe(401);
    expect((await nina.get('/v1/review')).status).toBe(401);
    await expect(SessionClient.signIn(visq.baseUrl, 'nina', 'nina-reviews-parts-9')).rejects.toThrow(/answered 401/);
    expect((await ada.send('PATCH', '/v1/users/nina', { disabled: false })).status).toBe(200);
    expect((await bearer(created.body.token, '/v1/review')).status).toBe(200);

    const promoted = await ada.send('PATCH', '/v1/users/nina', { role: 'engineer', reason: 'new job' });
    assertApiResponse('/v1/users/{username}', 'patch', 200, promoted.body);
    expect(promoted.body).toMatchObject({ role: 'engineer' });
    assertApiResponse('/v1/users', 'get', 200, (await ada.get('/v1/users')).body);
    expect((await bearer(created.body.token, '/v1/audit')).status).toBe(200);
    expect(await auditActions('user:nina')).toEqual([
      { action: 'user.add', actor: 'ada' }, { action: 'user.disable', actor: 'ada' }, { action: 'user.enable', actor: 'ada' }, { action: 'user.role', actor: 'ada' },
    ]);
    // Only admins manage people; an admin cannot lock themselves out.
    const emil = await SessionClient.signIn(visq.baseUrl, 'emil', password.emil);
    expect((await emil.get('/v1/users')).status).toBe(403);
    expect((await ada.send('PATCH', '/v1/users/ada', { disabled: true })).status).toBe(400);
  });

  it('tokens rotate, are revoked, expire, and go with a password reset', async () => {
    const ada = await SessionClient.signIn(visq.baseUrl, 'ada', password.ada);
    const { token: first } = await cliJson(['user', 'add', 'otto', '--role', 'reviewer', '--integration', '--token-days', '30'], env);
    const rotated = await ada.send('POST', '/v1/users/otto/token', { days: 7 });
    expect(rotated.status).toBe(201);
    assertApiResponse('/v1/users/{username}/token', 'post', 201, rotated.body);
    expect(Date.parse(rotated.body.tokenExpiresAt) - Date.now()).toBeLessThan(7 * 86400_000 + 60_000);
    expect((await bearer(first, '/v1/review')).status).toBe(401);
    expect((await bearer(rotated.body.token, '/v1/review')).status).toBe(200);
    expect((await ada.send('DELETE', '/v1/users/otto/token')).status).toBe(204);
    expect((await bearer(rotated.body.token, '/v1/review')).status).toBe(401);

    const { token: third } = await cliJson(['user', 'token', 'otto'], env);
    await database.db.query(`UPDATE users SET token_expires_at = now() - interval '1 second' WHERE username = 'otto'`);
    expect((await bearer(third, '/v1/review')).status).toBe(401);

    const { token: fourth } = await cliJson(['user', 'token', 'otto', '--days', '1'], env);
    expect((await bearer(fourth, '/v1/review')).status).toBe(200);
    expect((await cli(['user', 'passwd', 'otto'], env, 'otto-now-has-a-password\n')).code).toBe(0);
    expect((await bearer(fourth, '/v1/review')).status).toBe(401);
    expect((await auditActions('user:otto')).map((r: { action: string }) => r.action)).toEqual(['user.add', 'user.token', 'user.token.revoke', 'user.token', 'user.token', 'user.password']);
  });

  it('a station key is rotated (the old one refused at once) and a station disabled, by an engineer', async () => {
    const emil = await SessionClient.signIn(visq.baseUrl, 'emil', password.emil);
    const added = await emil.send('POST', '/v1/stations', { stationId: 'cam-rot', line: 'line-b' });
    expect(added.status).toBe(201);
    assertApiResponse('/v1/stations', 'post', 201, added.body);
    const post = (key: string, serial: string) => postImage(visq.baseUrl, key, [{ bytes: good[0]! }], { serial, partNumber: 'PN-1001', lotId: 'LOT-ROT' });
    expect((await post(added.body.apiKey, 'SN-ROT-1')).status).toBe(202);
    const rotated = await emil.send('POST', '/v1/stations/cam-rot/key', { reason: 'camera PC replaced' });
    expect(rotated.status).toBe(201);
    assertApiResponse('/v1/stations/{stationId}/key', 'post', 201, rotated.body);
    expect((await post(added.body.apiKey, 'SN-ROT-2')).status).toBe(401);
    expect((await post(rotated.body.apiKey, 'SN-ROT-3')).status).toBe(202);
    const disabled = await emil.send('PATCH', '/v1/stations/cam-rot', { disabled: true });
    assertApiResponse('/v1/stations/{stationId}', 'patch', 200, disabled.body);
    expect(disabled.body).toMatchObject({ stationId: 'cam-rot', disabled: true });
    assertApiResponse('/v1/stations', 'get', 200, (await emil.get('/v1/stations')).body);
    expect((await post(rotated.body.apiKey, 'SN-ROT-4')).status).toBe(401);
    const { stdout } = await cli(['station', 'list'], env);
    expect(JSON.parse(stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ stationId: 'cam-rot', disabled: true })]));
    expect((await auditActions('station:cam-rot')).map((r: { action: string }) => r.action)).toEqual(['station.add', 'station.key', 'station.disable']);
    // Reviewers do not manage stations.
    const rita = await SessionClient.signIn(visq.baseUrl, 'rita', password.rita);
    expect((await rita.send('POST', '/v1/stations/cam-7/key', {})).status).toBe(403);
  });
});

describe('shutdown', () => {
  it('visq stops cleanly and promptly while a browser holds the live review queue open', async () => {
    const rita = await SessionClient.signIn(visq.baseUrl, 'rita', password.rita);
    const events = await SseStream.open(`${visq.baseUrl}/v1/events`, rita.cookie);
    const started = Date.now();
    try {
      expect(await visq.stop()).toBe(0);
      // Within the grace a container runtime gives before SIGKILL (10 s for Docker).
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      events.close();
    }
  });
});
