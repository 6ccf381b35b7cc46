import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { startEmbeddedBroker } from '../../src/embedded/embedded-services.js';
import { startEmbeddedPostgres } from '../../src/embedded/embedded-postgres.js';
import { createLogger } from '../../src/app/logger.js';
import { mqttUp, redisUp, startMosquitto, startRedis, type Stop } from './services.js';

/**
 * Finds the real services the integration tests need: those already listening on their standard
 * ports (as on the development machines), else starts them: Redis and Mosquitto from PATH,
 * PostgreSQL embedded, and the embedded broker where there is no mosquitto binary.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string;
    redisUrl: string;
    mqttUrl: string;
  }
}

const stops: Stop[] = [];
const log = createLogger('warn', { component: 'test-services' }, 2);

export default async function setup(project: TestProject) {
  project.provide('postgresAdminUrl', await postgres());
  project.provide('redisUrl', await redis());
  project.provide('mqttUrl', await broker());
  return async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
}

async function postgres(): Promise<string> {
  const url = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    return url;
  } catch {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'visq-test-pg-'));
    await chmod(dir, 0o711); // as root, the server's own account keeps its cluster in here
    const svc = await startEmbeddedPostgres(dir, 0, log);
    stops.push(async () => { await svc.stop(); await rm(dir, { recursive: true, force: true }); });
    return svc.url.replace(/\/visq$/, '/postgres');
  } finally {
    await c.end().catch(() => {});
  }
}

async function redis(): Promise<string> {
  const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await redisUp(url)) return url;
  const started = await startRedis();
  stops.push(started.stop);
  return started.url;
}

async function broker(): Promise<string> {
  const url = process.env.TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';
  if (await mqttUp(url)) return url;
  try {
    const started = await startMosquitto();
    stops.push(started.stop);
    return started.url;
  } catch {
    const svc = await startEmbeddedBroker(0, log);
    stops.push(svc.stop);
    return svc.url;
  }
}
