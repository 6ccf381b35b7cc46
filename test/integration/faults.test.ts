import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startMosquitto, until } from '../support/services.js';
import { cliJson, createTestDatabase, fixture, MesClient, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/** Faults while verdicts are being made: nothing accepted is lost, nothing is decided twice. */
const dir = fixture('images', 'machined-surface', 'good');
const pngs = readdirSync(dir).filter((f) => f.endsWith('.png')).sort().map((f) => readFileSync(path.join(dir, f)));

describe('the broker is down while verdicts are made', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let cleanup: () => Promise<void>;
  let visq: VisqProcess;
  let mes: MesClient;
  let brokerDir: string;

  afterAll(async () => {
    await visq?.stop();
    await mes?.end();
    await database?.drop();
    await cleanup?.();
    if (brokerDir) await rm(brokerDir, { recursive: true, force: true });
  });

  it('verdicts wait in the outbox and all arrive, in order, once the broker is back', async () => {
    // A broker that persists and an MES with a persistent session: what it subscribed to before the restart still reaches it after.
    brokerDir = await mkdtemp(path.join(os.tmpdir(), 'visq-faults-mqtt-'));
    let broker = await startMosquitto(undefined, brokerDir);
    database = await createTestDatabase(inject('postgresAdminUrl'));
    const t = await testEnv({ databaseUrl: database.url, mqttUrl: broker.url, redisUrl: inject('redisUrl') });
    cleanup = t.cleanup;
    const { apiKey } = await cliJson(['station', 'add', 'cam-f', '--line', 'l1'], t.env);
    await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], t.env);
    visq = await startVisq('start', t.env);
    mes = await MesClient.connect(broker.url, [`${t.env.VISQ_TOPIC_PREFIX}/+/+/+/verdict`], true);

    await broker.stop();
    await until(async () => (await fetch(`${visq.baseUrl}/readyz`)).status === 503, 'readiness to report the broker');
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await postImage(visq.baseUrl, apiKey, [{ bytes: pngs[i % pngs.length]! }], { serial: `SN-${i}`, partNumber: 'PN-1001', lotId: 'LOT-F' });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    await until(async () => (await database.db.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)).rows[0].n === 8, 'all 8 verdicts to be stored unsent', 60_000);
    const unsentGauge = async () => Number(/^visq_outbox_unsent (\S+)$/m.exec(await (await fetch(`${visq.baseUrl}/metrics`)).text())?.[1]);
    await until(async () => (await unsentGauge()) === 8, 'the metrics to count 8 unsent verdict messages');

    broker = await startMosquitto(broker.port, brokerDir);
    const verdicts = await mes.waitForVerdicts(8, 60_000);
    expect(new Set(verdicts.map((v) => v.messageId)).size).toBe(8);
    expect(new Set(verdicts.map((v) => v.id))).toEqual(new Set(ids));
    // In the order they were decided (the outbox order), which is the order the MES must see.
    const made = await database.db.query('SELECT message_id FROM outbox ORDER BY seq');
    expect(verdicts.map((v) => v.messageId)).toEqual(made.rows.map((r) => r.message_id));
    await until(async () => (await database.db.query(`SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL`)).rows[0].n === 0, 'the outbox to be marked sent');
    await until(async () => (await unsentGauge()) === 0, 'the metrics to count no unsent verdict message');
    await visq.stop();
    await mes.end();
    await broker.stop();
  });
});

describe.each(['redis', 'postgres'] as const)('a worker is killed in the middle of its jobs (%s queue)', (queueKind) => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let cleanup: () => Promise<void>;
  const procs: VisqProcess[] = [];
  let mes: MesClient;

  afterAll(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await mes?.end();
    await database?.drop();
    await cleanup?.();
  });

  it('its jobs are retried by another worker and each inspection gets exactly one verdict', async () => {
    database = await createTestDatabase(inject('postgresAdminUrl'));
    const t = await testEnv({
      databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: queueKind === 'redis' ? inject('redisUrl') : undefined,
      extra: { VISQ_JOB_LOCK_MS: '2000', VISQ_WORKER_CONCURRENCY: '4' },
    });
    cleanup = t.cleanup;
    const { apiKey } = await cliJson(['station', 'add', 'cam-k', '--line', 'l1'], t.env);
    await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], t.env);
    mes = await MesClient.connect(inject('mqttUrl'), [`${t.env.VISQ_TOPIC_PREFIX}/+/+/+/verdict`]);
    const api = await startVisq('api', t.env);
    procs.push(api);

    const n = 40;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await postImage(api.baseUrl, apiKey, [{ bytes: pngs[i % pngs.length]! }], { serial: `SN-${i}`, partNumber: 'PN-1001', lotId: 'LOT-K' });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    // Which inspections a worker holds: the database says so for either queue backend.
    const running = async () => (await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE status = 'running'`)).rows[0].n as number;
    const victim = await startVisq('worker', t.env, false);
    procs.push(victim);
    await until(async () => (await running()) > 0, 'the worker to hold jobs', 30_000, 2);
    victim.child.kill('SIGKILL');
    await victim.exited;
    const decidedAtKill = (await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE status = 'done'`)).rows[0].n;
    expect(decidedAtKill).toBeLessThan(n);

    procs.push(await startVisq('worker', t.env));
    const verdicts = await mes.waitForVerdicts(n, 90_000);
    expect(new Set(verdicts.map((v) => v.id))).toEqual(new Set(ids));
    const perInspection = await database.db.query(`SELECT inspection_id, count(*)::int AS n FROM outbox GROUP BY inspection_id`);
    expect(perInspection.rows).toHaveLength(n);
    expect(perInspection.rows.every((r) => r.n === 1)).toBe(true);
    const decided = await database.db.query(`SELECT count(*)::int AS n FROM inspections WHERE status = 'done'`);
    expect(decided.rows[0].n).toBe(n);
    await new Promise((r) => setTimeout(r, 500));
    expect(mes.verdicts()).toHaveLength(n);
  });
});

describe('a service that cannot be reached at start', () => {
  it('says which one and why, retries, then exits 1', async () => {
    const { cli } = await import('../support/visq.js');
    const r = await cli(['worker'], { DATABASE_URL: 'postgres://visq@127.0.0.1:1/visq', VISQ_STARTUP_WAIT_SECONDS: '2', VISQ_MODELS_DIR: fixture('..', 'models') });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/PostgreSQL not reachable yet; retrying/);
    expect(r.stderr).toMatch(/cannot reach PostgreSQL at postgres:\/\/visq@127.0.0.1:1\/visq: .*ECONNREFUSED/);
    const database = await createTestDatabase(inject('postgresAdminUrl'));
    const redis = await cli(['worker'], { DATABASE_URL: database.url, REDIS_URL: 'redis://127.0.0.1:1', VISQ_STARTUP_WAIT_SECONDS: '2', VISQ_MODELS_DIR: fixture('..', 'models') });
    await database.drop();
    expect(redis.code).toBe(1);
    expect(redis.stderr).toMatch(/cannot reach Redis at redis:\/\/127.0.0.1:1\/?: connect ECONNREFUSED 127.0.0.1:1/);
  });

  it('an API waiting for its queue answers /readyz 503 naming it and the cause, /healthz 200, anything else 503', async () => {
    const database = await createTestDatabase(inject('postgresAdminUrl'));
    const t = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: 'redis://127.0.0.1:1', extra: { VISQ_STARTUP_WAIT_SECONDS: '60' } });
    const api = await startVisq('api', t.env, false);
    try {
      let readyz: any = null;
      await until(async () => {
        const res = await fetch(`${api.baseUrl}/readyz`).catch(() => null);
        if (!res) return false;
        expect(res.status).toBe(503);
        readyz = await res.json();
        return readyz.checks.queue !== undefined;
      }, 'the listener to name the queue', 30_000);
      expect(readyz).toEqual({ status: 'starting', checks: { queue: expect.stringMatching(/^cannot reach Redis at redis:\/\/127.0.0.1:1\/? yet \(connect ECONNREFUSED 127.0.0.1:1\); retrying$/) } });
      expect((await fetch(`${api.baseUrl}/healthz`)).status).toBe(200);
      const other = await fetch(`${api.baseUrl}/v1/review`);
      expect(other.status).toBe(503);
      expect(other.headers.get('retry-after')).toBe('5');
      expect(api.logs.join('\n')).not.toMatch(/Connection is closed/);
    } finally {
      await api.stop();
      await database.drop();
      await t.cleanup();
    }
  });
});

describe('images that cannot be evaluated', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let cleanup: () => Promise<void>;
  const procs: VisqProcess[] = [];

  afterAll(async () => {
    for (const p of procs) await p.stop();
    await database?.drop();
    await cleanup?.();
  });

  it('a stored image found corrupt at inference is decided REVIEW with a reason, at once; one that vanished, after its retries', async () => {
    const { writeFile, rm } = await import('node:fs/promises');
    database = await createTestDatabase(inject('postgresAdminUrl'));
    const t = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl'), extra: { VISQ_JOB_ATTEMPTS: '3' } });
    cleanup = t.cleanup;
    const { apiKey } = await cliJson(['station', 'add', 'cam-c', '--line', 'l1'], t.env);
    await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], t.env);
    const mes = await MesClient.connect(inject('mqttUrl'), [`${t.env.VISQ_TOPIC_PREFIX}/+/+/+/verdict`]);
    const api = await startVisq('api', t.env);
    procs.push(api);

    // No worker yet: damage the image store behind the API's back, as a failing disk would.
    const stored = (sha: string) => path.join(t.env.VISQ_DATA_DIR!, 'images', sha.slice(0, 2), sha.slice(2, 4), sha);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const corrupt = await postImage(api.baseUrl, apiKey, [{ bytes: pngs[0]! }], { serial: 'SN-C', partNumber: 'PN-1001', lotId: 'LOT-C' });
    const vanished = await postImage(api.baseUrl, apiKey, [{ bytes: pngs[1]! }], { serial: 'SN-V', partNumber: 'PN-1001', lotId: 'LOT-C' });
    await writeFile(stored(sha(pngs[0]!)), pngs[0]!.subarray(0, 100));
    await rm(stored(sha(pngs[1]!)));
    // Without the pixels the API prepared at upload, the worker must read and decode the originals.
    await rm(path.join(t.env.VISQ_DATA_DIR!, 'prepared'), { recursive: true, force: true });

    procs.push(await startVisq('worker', t.env));
    const [c, v] = await Promise.all([
      until(() => mes.verdicts().some((m) => m.id === corrupt.body.id), 'the corrupt image\'s verdict', 30_000),
      until(() => mes.verdicts().some((m) => m.id === vanished.body.id), 'the vanished image\'s verdict', 60_000),
    ]).then(() => [corrupt, vanished].map((r) => mes.verdicts().find((m) => m.id === r.body.id)));
    expect(c).toMatchObject({ verdict: 'REVIEW', reason: expect.stringMatching(/image 0 .* cannot be used/) });
    expect(c.characteristics[0]).toMatchObject({ result: 'review', value: null });
    expect(v).toMatchObject({ verdict: 'REVIEW', reason: expect.stringMatching(/after 3 attempts: .*not in the store/) });
    await mes.end();
  }, 90_000);
});

describe('more uploads than the plant can inspect', () => {
  it('a deep queue answers 503 with Retry-After, and a station over its rate 429; neither stores anything', async () => {
    const database = await createTestDatabase(inject('postgresAdminUrl'));
    const t = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl'), extra: { VISQ_MAX_QUEUE_DEPTH: '2', VISQ_STATION_RATE_LIMIT: '5' } });
    const { apiKey } = await cliJson(['station', 'add', 'cam-b', '--line', 'l1'], t.env);
    await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], t.env);
    const api = await startVisq('api', t.env); // no worker: the queue only grows
    try {
      const post = (serial: string) => postImage(api.baseUrl, apiKey, [{ bytes: pngs[0]! }], { serial, partNumber: 'PN-1001', lotId: 'LOT-B' }, { 'idempotency-key': `cam-b-${serial}` });
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push((await post(`SN-${i}`)).status);
        await new Promise((r) => setTimeout(r, 600)); // the depth is read at most every 500 ms
      }
      expect(statuses).toEqual([202, 202, 202, 503, 503]);
      const refused = await post('SN-X');
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(refused.body.error.code).toBe('overloaded');
      // A camera retrying an upload that was accepted still gets its inspection, however loaded the queue.
      const repeat = await post('SN-0');
      expect(repeat.status).toBe(200);
      const { rows: [first] } = await database.db.query(`SELECT id FROM inspections WHERE serial = 'SN-0'`);
      expect(repeat.body.id).toBe(first.id);

      const { rows } = await database.db.query('SELECT count(*)::int AS n FROM inspections');
      expect(rows[0].n).toBe(3);

      const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => fetch(`${api.baseUrl}/v1/inspections`, {
        method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'text/plain' }, body: `burst-${i}`,
      })));
      const limited = burst.filter((r) => r.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      expect(limited[0]!.headers.get('retry-after')).toBe('1');
      expect((await limited[0]!.json()).error.code).toBe('rate_limited');
    } finally {
      await api.stop();
      await database.drop();
      await t.cleanup();
    }
  });
});

describe('the module dies without a word', () => {
  it('the broker announces it offline (the last will), and its successor online again', async () => {
    const database = await createTestDatabase(inject('postgresAdminUrl'));
    const t = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl') });
    const stateTopic = `${t.env.VISQ_TOPIC_PREFIX}/site1/_module/state`;
    const mes = await MesClient.connect(inject('mqttUrl'), [stateTopic]);
    const states = () => mes.messages.filter((m) => m.topic === stateTopic).map((m) => m.payload);
    try {
      const api = await startVisq('api', t.env);
      await until(() => states().at(-1) === 'online', 'online');
      await api.stop('SIGKILL');
      await until(() => states().at(-1) === 'offline', 'the last will');
      const next = await startVisq('api', t.env);
      await until(() => states().at(-1) === 'online', 'online again');
      await next.stop();
    } finally {
      await mes.end();
      await database.drop();
      await t.cleanup();
    }
  });
});
