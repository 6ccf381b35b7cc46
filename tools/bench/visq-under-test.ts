/**
 * What `npm run bench` and `npm run soak` share: a `visq start` of their own, driven as a plant
 * drives it (a station's key, a quality plan, uploads over HTTP), and latency statistics.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCredentials } from '../../src/embedded/embedded-credentials.js';
import { freePort } from '../../src/embedded/embedded-services.js';

export const root = fileURLToPath(new URL('../../', import.meta.url));

export const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
export const summary = (ms: number[]) => {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: round(percentile(s, 50)), p95: round(percentile(s, 95)), p99: round(percentile(s, 99)), n: s.length };
};

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('visq did not become ready');
    await sleep(200);
  }
}

export interface VisqUnderTest {
  base: string;
  /** One station key per camera. */
  apiKeys: string[];
  pid: number;
  mqttUrl: string;
  topicPrefix: string;
  /** Resolves when the process exits, whoever ended it, with its exit code or the signal that ended it. */
  exited: Promise<number | NodeJS.Signals | null>;
  stop(): Promise<void>;
}

/**
 * `visq start` in a fresh data directory, on the services in REDIS_URL/DATABASE_URL/MQTT_URL or
 * else embedded ones on free ports, ready, with stations `{name}-cam-1…` on line `name` (one per
 * camera, as in a plant) and plan PN-1001 (the fixture's, or `planFile`).
 * Topic and queue prefixes are unique to the run, so shared services see no one else's traffic.
 */
export interface VisqOptions {
  /** Added to this shell's environment; an empty value unsets a variable. */
  env?: Record<string, string>;
  /** Stations to register, one per camera. */
  cameras?: number;
  planFile?: string;
  /** Options for node itself (`--cpu-prof`, which NODE_OPTIONS may not carry). */
  nodeArgs?: string[];
}

export async function startVisq(name: string, modelsDir: string, o: VisqOptions = {}): Promise<VisqUnderTest> {
  const { env: extraEnv = {}, cameras = 1, planFile = path.join(root, 'fixtures', 'plans', 'PN-1001.json'), nodeArgs = [] } = o;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `visq-${name}-`));
  const port = await freePort();
  const topicPrefix = `${name}${port}`;
  const env: Record<string, string> = {
    ...process.env as Record<string, string>,
    VISQ_DATA_DIR: dataDir, VISQ_HTTP_PORT: String(port), VISQ_HTTP_HOST: '127.0.0.1', VISQ_MODELS_DIR: modelsDir,
    VISQ_EMBEDDED_PG_PORT: process.env.VISQ_EMBEDDED_PG_PORT ?? String(await freePort()),
    VISQ_EMBEDDED_MQTT_PORT: process.env.VISQ_EMBEDDED_MQTT_PORT ?? String(await freePort()),
    VISQ_TOPIC_PREFIX: topicPrefix, VISQ_QUEUE_PREFIX: topicPrefix, VISQ_LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  for (const [k, v] of Object.entries(env)) if (v === '') delete env[k];
  const cli = path.join(root, 'dist', 'app', 'cli.js');
  const admin = async (a: string[]) => new Promise<any>((resolve, reject) => {
    const c = spawn(process.execPath, [cli, ...a], { env });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`visq ${a.join(' ')} exited ${code}`))));
  });
  const visq = spawn(process.execPath, [...nodeArgs, cli, 'start'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => visq.once('exit', (code, signal) => resolve(code ?? signal)));
  const stop = async () => {
    visq.kill('SIGTERM');
    await exited;
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const base = `http://127.0.0.1:${port}`;
    await until(async () => {
      if (visq.exitCode !== null) throw new Error(`visq start exited (code ${visq.exitCode}) before it was ready`);
      return (await fetch(`${base}/readyz`).catch(() => null))?.status === 200;
    }, 90_000);
    const apiKeys: string[] = [];
    for (let i = 1; i <= cameras; i++) apiKeys.push((await admin(['station', 'add', `${name}-cam-${i}`, '--line', name])).apiKey);
    await admin(['plan', 'apply', planFile]);
    // The embedded broker takes the data folder's own credentials, as an MES client on it would.
    const embedded = env.MQTT_URL ? null : (await readCredentials(dataDir))!;
    const mqttUrl = env.MQTT_URL ?? `mqtt://${embedded!.mqttUsername}:${encodeURIComponent(embedded!.mqttPassword)}@127.0.0.1:${env.VISQ_EMBEDDED_MQTT_PORT}`;
    return { base, apiKeys, pid: visq.pid!, mqttUrl, topicPrefix, exited, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One part of plan PN-1001 as a camera posts it: the raw image, the fields as query parameters. */
export function postInspection(visq: VisqUnderTest, image: Buffer<ArrayBuffer>, serial: string, lotId: string, idempotencyKey?: string, camera = 0) {
  return fetch(`${visq.base}/v1/inspections?serial=${encodeURIComponent(serial)}&partNumber=PN-1001&lotId=${encodeURIComponent(lotId)}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${visq.apiKeys[camera]}`, 'content-type': 'image/png',
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body: image,
  });
}
