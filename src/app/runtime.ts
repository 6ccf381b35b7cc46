import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import type { Config } from './config.js';
import { InvalidInputError } from '../errors.js';
import { startEmbeddedBroker, type RunningService } from '../embedded/embedded-services.js';
import { startEmbeddedPostgres } from '../embedded/embedded-postgres.js';
import { createHttpApp } from '../http/http-app.js';
import { FilesystemImageStore, volumeOf } from '../images/image-store.js';
import { Pruner, PrunerService } from '../images/pruner.js';
import { storageLimits } from '../images/retention.js';
import { StorageGuard } from '../images/storage-guard.js';
import { estimateStoredBytes, readStorageUsage, wakePruner } from '../db/stored-files.js';
import { PreparedInputs } from '../inference/prepared-inputs.js';
import { InferencePool } from '../inference/inference-pool.js';
import { loadRegistry, type ModelRegistry } from '../inference/model-registry.js';
import type { Logger } from './logger.js';
import { MesLink, redact } from '../mes/mes-link.js';
import type { Metrics } from './metrics.js';
import { createInspectionQueue, createInspectionWorker, enqueueInspection, queueBackendFor, type QueueBackend } from '../queue/inspection-queue.js';
import { claimInspection, listUndecided, recordDecision } from '../db/inspections.js';
import { createInspectionProcessor } from '../inspection/process-inspection.js';
import { Reconciler } from '../inspection/reconciler.js';
import { canConnect, createDatabase, migrate, ping, type Database } from '../db/database.js';
import { announceProcess } from '../db/processes.js';
import { ReviewChanges } from '../db/review-changes.js';

const loadedModels = (registry: ModelRegistry) => [...registry.values()].map(({ manifest: m }) => ({ id: m.id, version: m.version, sha256: m.sha256 }));

/** Something that can be stopped at shutdown, in reverse order of starting. */
type Stoppable = () => Promise<void>;

export class Runtime {
  private readonly stops: Stoppable[] = [];
  private readonly started = new Set<string>();
  constructor(readonly config: Config, readonly log: Logger, readonly metrics: Metrics) {}

  /** Runs `start` the first time `part` is asked for in this process (`visq start` has API and worker in one). */
  once(part: string, start: () => void): void {
    if (this.started.has(part)) return;
    this.started.add(part);
    start();
  }

  onStop(stop: Stoppable): void {
    this.stops.push(stop);
  }

  async stop(): Promise<void> {
    for (const stop of this.stops.reverse()) {
      await stop().catch((err) => this.log.error({ err }, 'error while stopping'));
    }
    this.stops.length = 0;
  }
}

const embeddedPostgresUrl = (port: number) => `postgres://postgres:visq-embedded@127.0.0.1:${port}/visq`;

/**
 * DATABASE_URL when set; otherwise the embedded PostgreSQL of a `visq start` already running on
 * this data directory, or a new one when `mayStartEmbedded`.
 */
export async function resolveDatabaseUrl(rt: Runtime, mayStartEmbedded: boolean): Promise<string> {
  const { config, log } = rt;
  if (config.databaseUrl) return config.databaseUrl;
  if (config.embedded.postgresPort && (await canConnect(embeddedPostgresUrl(config.embedded.postgresPort)))) {
    return embeddedPostgresUrl(config.embedded.postgresPort);
  }
  if (!mayStartEmbedded) throw new InvalidInputError('missing_configuration', 'DATABASE_URL is not set (only `visq start`, `visq demo` and the admin commands run an embedded PostgreSQL)');
  const pgService = await startEmbeddedPostgres(config.dataDir, config.embedded.postgresPort, log);
  rt.onStop(pgService.stop);
  return pgService.url;
}

export async function resolveMqttUrl(rt: Runtime, mayStartEmbedded: boolean): Promise<string> {
  if (rt.config.mqttUrl) return rt.config.mqttUrl;
  if (!mayStartEmbedded) throw new InvalidInputError('missing_configuration', 'MQTT_URL is not set (only `visq start` and `visq demo` run an embedded broker)');
  const broker: RunningService = await startEmbeddedBroker(rt.config.embedded.mqttPort, rt.log);
  rt.onStop(broker.stop);
  return broker.url;
}

/** Waits for PostgreSQL (retrying for a while, saying why), migrates, and returns a pool. */
export async function openDatabase(rt: Runtime, url: string, waitSeconds = rt.config.startupWaitSeconds): Promise<Database> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate(url, rt.log);
      break;
    } catch (err) {
      const why = (err as Error).message;
      if (Date.now() > deadline) throw new Error(`cannot reach PostgreSQL at ${redact(url)}: ${why}`);
      rt.log.warn({ database: redact(url), err: why, attempt }, 'PostgreSQL not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  const db = createDatabase(url, 20);
  rt.onStop(() => db.end());
  return db;
}

async function waitForRedis(rt: Runtime, url: string, waitSeconds = rt.config.startupWaitSeconds): Promise<void> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const r = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: true, lazyConnect: true, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      // Managed Redis services may refuse CONFIG: then there is nothing to warn about.
      const policy = await r.config('GET', 'maxmemory-policy').catch(() => null) as string[] | null;
      if (policy?.[1] && policy[1] !== 'noeviction') rt.log.warn({ policy: policy[1] }, 'Redis maxmemory-policy should be noeviction, or queued jobs can be evicted');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`cannot reach Redis at ${redact(url)}: ${(err as Error).message}`);
      rt.log.warn({ redis: redact(url), err: (err as Error).message }, 'Redis not reachable yet; retrying');
      await new Promise((res) => setTimeout(res, 2000));
    } finally {
      r.disconnect();
    }
  }
}

export async function openQueueBackend(rt: Runtime, databaseUrl: string): Promise<QueueBackend> {
  const backend = queueBackendFor(rt.config.redisUrl, rt.config.queuePrefix, databaseUrl);
  if (backend.kind === 'redis') await waitForRedis(rt, backend.url);
  return backend;
}

export async function openRegistry(rt: Runtime): Promise<ModelRegistry> {
  const registry = await loadRegistry(rt.config.modelsDir);
  rt.log.info({ models: [...registry.values()].map((m) => `${m.manifest.id}@${m.manifest.version}`) }, 'model registry loaded');
  return registry;
}

/** Asks at most once per `ms`: the queue depth does not need a round trip per upload. */
function cachedFor<T>(ms: number, read: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | null = null;
  let at = 0;
  return () => {
    if (!value || Date.now() - at > ms) {
      at = Date.now();
      value = read();
      value.catch(() => { value = null; });
    }
    return value;
  };
}

/** The image store's pruner, one leader per database among the API and worker processes. */
export function createPruner(rt: Runtime, db: Database): Pruner {
  const { config, log } = rt;
  return new Pruner({
    db, images: new FilesystemImageStore(config.imageDir), prepared: new PreparedInputs(config.preparedDir),
    imageDir: config.imageDir, settings: config.storage, log,
  });
}

async function startPruner(rt: Runtime, db: Database, databaseUrl: string): Promise<void> {
  const { config, log } = rt;
  // The volume's size is read from the store's folder.
  await mkdir(config.imageDir, { recursive: true });
  rt.once('pruner', () => {
    const service = new PrunerService(createPruner(rt, db), {
      databaseUrl, intervalSeconds: config.storage.pruneIntervalSeconds, prepared: new PreparedInputs(config.preparedDir),
      preparedMaxSeconds: config.storage.retention.prepared.maxSeconds, log,
    });
    service.start();
    rt.onStop(() => service.stop());
  });
}

const jobPolicy = (config: Config) => ({ attempts: config.jobAttempts, backoffMs: 2000, lockMs: config.jobLockMs });

export interface ApiHandle { port: number }

/** The HTTP API and the MES link (outbox relay, context, module state). */
export async function runApi(rt: Runtime, db: Database, backend: QueueBackend, registry: ModelRegistry, databaseUrl: string, mqttUrl: string): Promise<ApiHandle> {
  const { config, log, metrics } = rt;
  const queue = createInspectionQueue(backend, jobPolicy(config));
  // Connection errors are retried by the queue; unheard, they would be printed as unhandled.
  queue.on('error', (err) => log.warn({ err: err.message }, 'queue connection error'));
  rt.onStop(() => queue.close());
  await queue.waitUntilReady();
  const link = new MesLink({ db, databaseUrl, mqttUrl, site: config.site, topicPrefix: config.topicPrefix, metrics, log });
  link.start();
  rt.onStop(() => link.stop());

  metrics.countQueueWith(() => queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed'));
  await startPruner(rt, db, databaseUrl);
  const storage = new StorageGuard({
    estimateStoredBytes: () => estimateStoredBytes(db),
    volume: () => volumeOf(config.imageDir),
    wakePruner: (why) => wakePruner(db, why),
    settings: config.storage,
    log,
  });
  metrics.readStorageWith(cachedFor(1000, async () => {
    const [usage, volume] = await Promise.all([readStorageUsage(db), volumeOf(config.imageDir)]);
    return { classes: usage?.classes ?? {}, quotaBytes: storageLimits(config.storage, volume.totalBytes).quotaBytes, volumeFreeBytes: volume.freeBytes };
  }));
  const reviewChanges = new ReviewChanges(databaseUrl, log);
  reviewChanges.start();

  const app = createHttpApp({
    db,
    images: new FilesystemImageStore(config.imageDir),
    enqueue: (id) => enqueueInspection(queue, id),
    queueDepth: cachedFor(500, async () => {
      const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
      return (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
    }),
    maxQueueDepth: config.maxQueueDepth,
    stationRateLimit: config.stationRateLimit,
    modelInputs: (ids) => ids.flatMap((id) => registry.get(id)?.manifest.input ?? []),
    prepared: new PreparedInputs(config.preparedDir),
    storage,
    models: [...registry.values()].map(({ manifest: m }) => ({ id: m.id, version: m.version, task: m.task, measures: m.measures })),
    reviewChanges,
    sessionSeconds: config.sessionHours * 3600,
    trustProxy: config.trustProxy,
    limits: config.limits,
    metrics,
    log,
    readiness: {
      database: async () => (await ping(db), null),
      queue: async () => (await queue.getJobCounts('waiting'), null),
      broker: async () => link.readiness(),
      models: async () => (registry.size ? null : `no models in ${config.modelsDir}`),
      storage: () => storage.readiness(),
    },
  });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.http.port, config.http.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  server.keepAliveTimeout = 65_000;
  rt.onStop(async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Live event streams never end on their own; end them so the server can close.
    await reviewChanges.stop();
    server.closeIdleConnections();
    await closed;
  });
  const port = (server.address() as AddressInfo).port;
  rt.onStop(await announceProcess(db, 'api', loadedModels(registry), (err) => log.warn({ err: err.message }, 'cannot refresh this process in the processes table')));
  log.info({ port, queue: backend.kind }, 'HTTP API listening');
  return { port };
}

/** Inspection workers: a BullMQ worker whose jobs run inference on a pool of threads. */
export async function runWorker(rt: Runtime, db: Database, backend: QueueBackend, registry: ModelRegistry, databaseUrl: string): Promise<void> {
  const { config, log, metrics } = rt;
  const store = new FilesystemImageStore(config.imageDir);
  const threads = config.inferenceThreads ?? os.availableParallelism();
  const pool = new InferencePool(registry, config.imageDir, config.preparedDir, config.limits.imagePixels, threads);
  // The first part after a start must not pay for loading and setting up the sessions.
  await pool.warmUp();
  const processor = createInspectionProcessor({
    claimInspection: (id) => claimInspection(db, id),
    recordDecision: (work, decision, models, overlays) => recordDecision(db, work, decision, models, overlays, async (revived) => {
      for (const o of revived) {
        // Without its bytes (it cannot happen: the pool returns them), the job's retry makes the overlay again.
        if (!o.data) throw new Error(`overlay ${o.sha256} was removed by the pruner while the inspection was decided`);
        await store.put(o.data);
      }
    }),
    pool, registry, metrics, log,
  });
  const worker = createInspectionWorker(backend, processor, config.workerConcurrency ?? threads * 2, jobPolicy(config));
  worker.on('error', (err) => log.warn({ err: err.message }, 'queue worker error'));
  const queue = createInspectionQueue(backend, jobPolicy(config));
  queue.on('error', (err) => log.warn({ err: err.message }, 'queue connection error'));
  const reconciler = new Reconciler({
    listUndecided: (olderThan, limit) => listUndecided(db, olderThan, limit),
    findJob: async (id) => {
      const job = await queue.getJob(id);
      return job ? { state: await job.getState(), failedReason: job.failedReason, remove: () => job.remove() } : null;
    },
    enqueue: (id) => enqueueInspection(queue, id),
    claimInspection: (id) => claimInspection(db, id),
    recordDecision: (work, decision) => recordDecision(db, work, decision, [], []),
    log,
  }, config.reconcileAfterSeconds);
  reconciler.start(Math.min(15_000, config.reconcileAfterSeconds * 500));
  void worker.run();
  await startPruner(rt, db, databaseUrl);
  rt.onStop(await announceProcess(db, 'worker', loadedModels(registry), (err) => log.warn({ err: err.message }, 'cannot refresh this process in the processes table')));
  log.info({ threads, concurrency: worker.opts.concurrency, queue: backend.kind }, 'inspection worker running');
  // Closing waits for the jobs in hand to finish, so none is left stalled by a clean shutdown.
  rt.onStop(async () => {
    reconciler.stop();
    await worker.close();
    await queue.close();
    await pool.close();
  });
}

/** `visq start`: workers, API and MES link in one process, on embedded services where no URL is set. */
export async function runAll(rt: Runtime) {
  const registry = await openRegistry(rt);
  const databaseUrl = await resolveDatabaseUrl(rt, true);
  const mqttUrl = await resolveMqttUrl(rt, true);
  const db = await openDatabase(rt, databaseUrl);
  const backend = await openQueueBackend(rt, databaseUrl);
  // Started after the API so that it stops first: jobs in hand finish while the MES link can still relay their verdicts.
  const { port } = await runApi(rt, db, backend, registry, databaseUrl, mqttUrl);
  await runWorker(rt, db, backend, registry, databaseUrl);
  return { port, db, registry, mqttUrl };
}
