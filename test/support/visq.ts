import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { freePort } from '../../src/embedded/embedded-services.js';
import { until } from './services.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cliPath = path.join(repoRoot, 'dist', 'app', 'cli.js');

export const fixture = (...parts: string[]) => path.join(repoRoot, 'fixtures', ...parts);

/** A fresh database per test file, dropped afterwards. */
export async function createTestDatabase(adminUrl: string): Promise<{ url: string; db: pg.Pool; drop: () => Promise<void> }> {
  const name = `visq_test_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = new pg.Pool({ connectionString: url, max: 4 });
  db.on('error', () => {});
  return {
    url,
    db,
    drop: async () => {
      await db.end();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Environment for one test's visq processes: its own database, queue prefix, topic prefix and data dir. */
export async function testEnv(o: { databaseUrl: string; mqttUrl: string; redisUrl?: string; extra?: Record<string, string> }): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'visq-test-data-'));
  const id = randomBytes(4).toString('hex');
  const env: Record<string, string> = {
    DATABASE_URL: o.databaseUrl,
    MQTT_URL: o.mqttUrl,
    VISQ_DATA_DIR: dataDir,
    VISQ_MODELS_DIR: path.join(repoRoot, 'models'),
    VISQ_TOPIC_PREFIX: `visqtest-${id}`,
    VISQ_QUEUE_PREFIX: `visqtest-${id}`,
    VISQ_HTTP_HOST: '127.0.0.1',
    VISQ_INFERENCE_THREADS: '1',
    VISQ_LOG_LEVEL: 'info',
    ...(o.redisUrl ? { REDIS_URL: o.redisUrl } : {}),
    ...o.extra,
  };
  return { env, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

export function cli(args: string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: { PATH: process.env.PATH, ...env }, cwd: repoRoot });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    if (input !== undefined) child.stdin.end(input);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function cliJson<T = any>(args: string[], env: Record<string, string>): Promise<T> {
  const r = await cli(args, env);
  if (r.code !== 0) throw new Error(`visq ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A running `visq <command>` process. */
export class VisqProcess {
  readonly logs: string[] = [];
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess, readonly port: number | null) {
    const collect = (d: Buffer) => this.logs.push(...d.toString().split('\n').filter(Boolean));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  get baseUrl(): string { return `http://127.0.0.1:${this.port}`; }

  /** Log lines as parsed JSON (pino), skipping anything else. */
  json(): any[] {
    return this.logs.flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export async function startVisq(command: 'start' | 'api' | 'worker', env: Record<string, string>, waitReady = true): Promise<VisqProcess> {
  const port = command === 'worker' ? null : Number(env.VISQ_HTTP_PORT ?? (await freePort()));
  const child = spawn(process.execPath, [cliPath, command], {
    env: { PATH: process.env.PATH, ...env, ...(port ? { VISQ_HTTP_PORT: String(port) } : {}) },
    cwd: repoRoot,
  });
  const p = new VisqProcess(child, port);
  if (waitReady) {
    if (port) {
      await until(async () => {
        if (child.exitCode !== null) throw new Error(`visq ${command} exited ${child.exitCode}:\n${p.logs.join('\n')}`);
        try { return (await fetch(`${p.baseUrl}/readyz`)).status === 200; } catch { return false; }
      }, `visq ${command} to be ready`, 60_000, 200);
    } else {
      await until(() => {
        if (child.exitCode !== null) throw new Error(`visq ${command} exited ${child.exitCode}:\n${p.logs.join('\n')}`);
        return p.logs.some((l) => l.includes('inspection worker running'));
      }, `visq ${command} to run`, 60_000, 100);
    }
  }
  return p;
}

/** A real MQTT client playing the MES. */
export class MesClient {
  readonly messages: { topic: string; payload: any; raw: Buffer; retain: boolean }[] = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, raw, packet) => {
      let payload: any = raw.toString();
      try { payload = JSON.parse(payload); } catch { /* state topics are plain text */ }
      this.messages.push({ topic, payload, raw, retain: packet.retain });
    });
  }

  /** `persistent`: a session the broker keeps (and queues QoS 1 messages for) while the MES is away. */
  static async connect(url: string, subscriptions: string[], persistent = false): Promise<MesClient> {
    const client = await mqtt.connectAsync(url, { clientId: `test-mes-${randomBytes(4).toString('hex')}`, reconnectPeriod: 500, clean: !persistent });
    const mes = new MesClient(client);
    if (subscriptions.length) await client.subscribeAsync(subscriptions, { qos: 1 });
    return mes;
  }

  verdicts(): any[] {
    return this.messages.filter((m) => m.topic.endsWith('/verdict')).map((m) => m.payload);
  }

  async waitForVerdicts(n: number, timeoutMs = 30_000): Promise<any[]> {
    await until(() => this.verdicts().length >= n, `${n} verdict messages (have ${this.verdicts().length})`, timeoutMs);
    return this.verdicts();
  }

  async publish(topic: string, payload: string | Buffer, retain = false): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1, retain });
  }

  async end(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** Posts an image as a camera station does (multipart), returning status and JSON body. */
export async function postImage(
  baseUrl: string,
  apiKey: string,
  images: { bytes: Uint8Array; type?: string; name?: string }[],
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const form = new FormData();
  for (const img of images) form.append('image', new Blob([new Uint8Array(img.bytes)], { type: img.type ?? 'image/png' }), img.name ?? 'part.png');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${baseUrl}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, ...headers }, body: form });
  const text = await res.text();
  let body: any = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body, headers: res.headers };
}

export async function getJson(url: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  let body: any = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body };
}
