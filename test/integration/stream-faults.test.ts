import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort, type RunningService } from '../../src/embedded/embedded-services.js';
import { startEmbeddedPostgres } from '../../src/embedded/embedded-postgres.js';
import { createLogger } from '../../src/app/logger.js';
import { inspectionQueueName } from '../../src/queue/inspection-queue.js';
import { redisUp, startMosquitto, startProgram, until, type Stop } from '../support/services.js';
import { cliJson, fixture, MesClient, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * While a stream of 500 images flows, one fault at a time: Redis restarts, PostgreSQL restarts, the
 * broker is down, the API is killed. Each run has services of its own, so they can be stopped.
 * At the end: accepted uploads = decided inspections = distinct verdict messages at the MES.
 */
const images = (() => {
  const dir = fixture('images', 'machined-surface', 'good');
  return readdirSync(dir).filter((f) => f.endsWith('.png')).sort().map((f) => readFileSync(path.join(dir, f)));
})();
const log = createLogger('warn', { component: 'stream-faults' }, 2);
const streamLength = 500;
export const counts: Record<string, unknown>[] = [];

interface Stack {
  pgPort: number; pgDir: string; pgService: RunningService;
  redisPort: number; redisDir: string; stopRedis: Stop;
  mqttPort: number; mqttDir: string; stopBroker: Stop;
  env: Record<string, string>; cleanup: () => Promise<void>;
  api: VisqProcess; worker: VisqProcess; apiKey: string; db: pg.Pool;
}

async function startRedis(port: number, dir: string): Promise<Stop> {
  const { stop } = await startProgram('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', dir]);
  await until(() => redisUp(`redis://127.0.0.1:${port}`), 'redis to listen');
  return stop;
}

async function startStack(): Promise<Stack> {
  const pgDir = await mkdtemp(path.join(os.tmpdir(), 'visq-faults-pg-'));
  await chmod(pgDir, 0o711); // as root, the server's own account keeps its cluster in here
  const pgPort = await freePort();
  const pgService = await startEmbeddedPostgres(pgDir, pgPort, log);
  const redisDir = await mkdtemp(path.join(os.tmpdir(), 'visq-faults-redis-'));
  const redisPort = await freePort();
  const stopRedis = await startRedis(redisPort, redisDir);
  const mqttDir = await mkdtemp(path.join(os.tmpdir(), 'visq-faults-mqtt-'));
  const broker = await startMosquitto(undefined, mqttDir);
  const { env, cleanup } = await testEnv({
    databaseUrl: pgService.url, mqttUrl: broker.url, redisUrl: `redis://127.0.0.1:${redisPort}`,
    extra: { VISQ_RECONCILE_AFTER_SECONDS: '5', VISQ_STATION_RATE_LIMIT: '100000', VISQ_INFERENCE_THREADS: '1' },
  });
  const { apiKey } = await cliJson(['station', 'add', 'cam-s', '--line', 'l1'], env);
  await cliJson(['plan', 'apply', fixture('plans', 'PN-1001.json')], env);
  const worker = await startVisq('worker', env);
  const api = await startVisq('api', env);
  const db = new pg.Pool({ connectionString: pgService.url, max: 2 });
  db.on('error', () => {});
  return { pgPort, pgDir, pgService, redisPort, redisDir, stopRedis, mqttPort: broker.port, mqttDir, stopBroker: broker.stop, env, cleanup, api, worker, apiKey, db };
}

async function stopStack(s: Stack) {
  await s.api.stop();
  await s.worker.stop();
  await s.db.end().catch(() => {});
  await s.stopBroker();
  await s.stopRedis();
  await s.pgService.stop();
  await rm(s.pgDir, { recursive: true, force: true });
  await rm(s.redisDir, { recursive: true, force: true });
  await rm(s.mqttDir, { recursive: true, force: true });
  await s.cleanup();
}

/** A camera that retries each part (same Idempotency-Key) until it gets a 202 or 200. */
async function camera(s: Stack, onProgress: (sent: number) => void): Promise<{ accepted: Set<string>; retries: number }> {
  const accepted = new Set<string>();
  let retries = 0;
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < streamLength) {
      const i = next++;
      const deadline = Date.now() + 180_000;
      for (;;) {
        const form = new FormData();
        form.append('image', new Blob([new Uint8Array(images[i % images.length]!)], { type: 'image/png' }), 'p.png');
        form.append('serial', `SN-${i}`);
        form.append('partNumber', 'PN-1001');
        form.append('lotId', 'LOT-S');
        const res = await fetch(`${s.api.baseUrl}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${s.apiKey}`, 'idempotency-key': `cam-s-${i}` }, body: form, signal: AbortSignal.timeout(10_000) }).catch(() => null);
        if (res && (res.status === 202 || res.status === 200)) {
          accepted.add(((await res.json()) as { id: string }).id);
          break;
        }
        if (res && res.status < 500 && res.status !== 429) throw new Error(`part ${i}: ${res.status} ${await res.text()}`);
        const answer = res ? `${res.status} ${await res.text().catch(() => '')}` : 'no answer';
        retries++;
        if (Date.now() > deadline) {
          const api = `the API ${s.api.child.exitCode === null && s.api.child.signalCode === null ? 'runs' : `exited (${s.api.child.exitCode ?? s.api.child.signalCode})`}; its last log lines:\n${s.api.logs.slice(-20).join('\n')}`;
          throw new Error(`part ${i} was never accepted; the last answer: ${answer.slice(0, 300)}; ${api}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      onProgress(i);
    }
  }));
  return { accepted, retries };
}

async function runWithFault(name: string, fault: (s: Stack) => Promise<void>) {
  const s = await startStack();
  // The MES as it should run: a persistent session on a broker that persists, so nothing is missed while either restarts.
  const mes = await MesClient.connect(`mqtt://127.0.0.1:${s.mqttPort}`, [`${s.env.VISQ_TOPIC_PREFIX}/+/+/+/verdict`], true);
  try {
    let faultDone: Promise<void> | null = null;
    const { accepted, retries } = await camera(s, (i) => { if (i === Math.floor(streamLength / 3) && !faultDone) faultDone = fault(s); });
    await faultDone;
    await until(async () => (await s.db.query(`SELECT count(*)::int AS n FROM inspections WHERE status = 'done'`).catch(() => ({ rows: [{ n: -1 }] }))).rows[0].n === accepted.size, 'every accepted upload to be decided', 120_000, 500).catch(async (err) => {
      const byStatus = (await s.db.query('SELECT status, count(*)::int AS n FROM inspections GROUP BY status')).rows;
      const stuck = (await s.db.query(`SELECT id, status FROM inspections WHERE status <> 'done' LIMIT 5`)).rows;
      const queue = new Queue(inspectionQueueName, { connection: { url: `redis://127.0.0.1:${s.redisPort}` }, prefix: s.env.VISQ_QUEUE_PREFIX });
      const jobs = await Promise.all(stuck.map(async (r) => {
        const job = await queue.getJob(r.id);
        return { ...r, job: job ? { state: await job.getState(), attemptsMade: job.attemptsMade, failedReason: job.failedReason } : null };
      }));
      await queue.close();
      const workerLog = s.worker.logs.filter((l) => /"level":(40|50|60)/.test(l)).slice(-15).join('\n');
      throw new Error(`${err.message}; accepted ${accepted.size}, inspections by status ${JSON.stringify(byStatus)}, some undecided ${JSON.stringify(jobs)}\n${workerLog}`);
    });
    await until(() => new Set(mes.verdicts().map((v) => v.id)).size >= accepted.size, 'every verdict at the MES', 120_000, 500).catch(async (err) => {
      const unsent = (await s.db.query('SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL')).rows[0].n;
      const linkLog = s.api.logs.filter((l) => l.includes('mes-link')).slice(-15).join('\n');
      throw new Error(`${err.message}; MES has ${new Set(mes.verdicts().map((v) => v.id)).size}, outbox unsent ${unsent}, MES client connected ${mes.client.connected}\n${linkLog}`);
    });
    const decided = (await s.db.query(`SELECT id FROM inspections WHERE status = 'done'`)).rows.map((r) => r.id as string);
    const perInspection = (await s.db.query('SELECT count(*)::int AS n FROM outbox GROUP BY inspection_id')).rows;
    const messages = mes.verdicts();
    const distinctMessages = new Set(messages.map((v) => v.messageId));
    const row = {
      fault: name, streamed: streamLength, accepted: accepted.size, decided: decided.length,
      distinctVerdictMessages: distinctMessages.size, duplicatesDelivered: messages.length - distinctMessages.size,
      review: messages.filter((v) => v.verdict === 'REVIEW').length, cameraRetries: retries,
    };
    counts.push(row);
    process.stderr.write(`stream-faults ${JSON.stringify(row)}\n`);
    expect(accepted.size).toBe(streamLength);
    expect(new Set(decided)).toEqual(accepted);
    expect(perInspection.every((r) => r.n === 1)).toBe(true);
    expect(new Set(messages.map((v) => v.id))).toEqual(accepted);
    expect(distinctMessages.size).toBe(streamLength);
    // In the order they were made (one station): the MES sees the outbox's order, duplicates aside.
    const firstSeen = [...new Set(messages.map((v) => v.messageId))];
    const made = (await s.db.query('SELECT message_id FROM outbox ORDER BY seq')).rows.map((r) => r.message_id);
    expect(firstSeen).toEqual(made);
  } finally {
    await mes.end();
    await stopStack(s);
  }
}

describe('nothing lost while a stream of 500 images flows', () => {
  it('Redis restarts (AOF)', async () => {
    await runWithFault('Redis restart', async (s) => {
      await s.stopRedis();
      await new Promise((r) => setTimeout(r, 2000));
      s.stopRedis = await startRedis(s.redisPort, s.redisDir);
    });
  }, 400_000);

  it('PostgreSQL restarts', async () => {
    await runWithFault('PostgreSQL restart', async (s) => {
      await s.pgService.stop();
      await new Promise((r) => setTimeout(r, 2000));
      s.pgService = await startEmbeddedPostgres(s.pgDir, s.pgPort, log);
    });
  }, 400_000);

  it('the broker is down for a minute', async () => {
    await runWithFault('MQTT broker down 60 s', async (s) => {
      await s.stopBroker();
      await new Promise((r) => setTimeout(r, 60_000));
      s.stopBroker = (await startMosquitto(s.mqttPort, s.mqttDir)).stop;
    });
  }, 400_000);

  it('the API is killed during uploads and started again', async () => {
    await runWithFault('API killed and restarted', async (s) => {
      const port = s.api.port!;
      await s.api.stop('SIGKILL');
      s.api = await startVisq('api', { ...s.env, VISQ_HTTP_PORT: String(port) });
    });
  }, 400_000);
});
