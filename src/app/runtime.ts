import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { createServer, type RequestListener, type Server } from 'node:http';
import { Redis } from 'ioredis';
import type { Config } from './config.js';
import { InvalidInputError } from '../errors.js';
import { startEmbeddedBroker, type RunningService } from '../embedded/embedded-services.js';
import { embeddedCredentials, readCredentials } from '../embedded/embedded-credentials.js';
import { embeddedPostgresUrls, startEmbeddedPostgres } from '../embedded/embedded-postgres.js';
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
import { claimInspection, listUndecided, recordDecisions, type DecisionToRecord, type Overlay } from '../db/inspections.js';
import { GroupCommit } from '../db/group-commit.js';
import { createInspectionProcessor } from '../inspection/process-inspection.js';
import { DecodeSlots } from '../inspection/decode-slots.js';
import { Reconciler } from '../inspection/reconciler.js';
import { canConnect, createDatabase, migrate, ping, SchemaNotCurrentError, type Database } from '../db/database.js';
import { announceProcess } from '../db/processes.js';
import { ReviewChanges } from '../db/review-changes.js';
import { grantApplicationRole, roleWarnings } from '../db/database-roles.js';

const loadedModels = (registry: ModelRegistry) => [...registry.values()].map(({ manifest: m }) => ({ id: m.id, version: m.version, sha256: m.sha256 }));

/** Something that can be stopped at shutdown, in reverse order of starting. */
type Stoppable = () => Promise<void>;

export class Runtime {
  private readonly stops: Stoppable[] = [];
  /** What a starting process still waits for, and why (its HTTP listener's /readyz shows it). */
  readonly waitingFor = new Map<string, string>();
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

/**
 * The HTTP port, open from the first moment: while the process waits for its database, queue and
 * models, /healthz says it lives, /readyz answers 503 naming what is missing, and every other
 * request 503 with Retry-After. `serve` hands the port to the API once it is ready.
 */
export class Listener {
  private handler: RequestListener;
  private closed: Promise<void> | null = null;

  private constructor(private readonly server: Server, rt: Runtime) {
    this.handler = (req, res) => {
      const ready = req.url === '/healthz';
      const body = req.url === '/healthz' ? { status: 'ok' }
        : req.url === '/readyz' ? { status: 'starting', checks: Object.fromEntries(rt.waitingFor) }
        : { error: { code: 'starting', message: `visq is starting: waiting for ${[...rt.waitingFor.keys()].join(', ') || 'its services'}` } };
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store', ...(ready ? {} : { 'retry-after': '5' }) });
      res.end(JSON.stringify(body));
    };
  }

  static async open(rt: Runtime): Promise<Listener> {
    const server = createServer((req, res) => listener.handler(req, res));
    const listener = new Listener(server, rt);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`cannot listen on ${rt.config.http.host}:${rt.config.http.port} (set VISQ_HTTP_PORT): ${err.message}`)));
      server.listen(rt.config.http.port, rt.config.http.host, () => resolve());
    });
    server.keepAliveTimeout = 65_000;
    rt.onStop(() => listener.close());
    rt.log.info({ port: listener.port }, 'HTTP listening (ready once its services are)');
    return listener;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  serve(app: RequestListener): void {
    this.handler = app;
  }

  /** Stops accepting connections and waits for those in progress; a second call waits for the same. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    return this.closed;
  }
}

/** Where visq's database is: `url` for the application's role, `ownerUrl` for migrations (null: the same role). */
export interface DatabaseUrls { url: string; ownerUrl: string | null }

/**
 * DATABASE_URL (and VISQ_MIGRATION_DATABASE_URL) when set; otherwise the embedded PostgreSQL of a
 * `visq start` already running on this data directory, or a new one when `mayStartEmbedded`.
 */
export async function resolveDatabaseUrls(rt: Runtime, mayStartEmbedded: boolean): Promise<DatabaseUrls> {
  const { config, log } = rt;
  if (config.databaseUrl) return { url: config.databaseUrl, ownerUrl: config.migrationDatabaseUrl ?? null };
  // Another `visq start` on this data directory: its server, with this folder's password.
  const credentials = await readCredentials(config.dataDir);
  const running = config.embedded.postgresPort && credentials ? embeddedPostgresUrls(config.embedded.postgresPort, credentials.postgresPassword) : null;
  if (running && (await canConnect(running.url))) return { url: running.appUrl, ownerUrl: running.url };
  if (!mayStartEmbedded) throw new InvalidInputError('missing_configuration', 'DATABASE_URL is not set (only `visq start`, `visq demo` and the admin commands run an embedded PostgreSQL)');
  const pgService = await startEmbeddedPostgres(config.dataDir, config.embedded.postgresPort, log);
  rt.onStop(pgService.stop);
  return { url: pgService.appUrl, ownerUrl: pgService.url };
}

export async function resolveMqttUrl(rt: Runtime, mayStartEmbedded: boolean): Promise<string> {
  if (rt.config.mqttUrl) return rt.config.mqttUrl;
  if (!mayStartEmbedded) throw new InvalidInputError('missing_configuration', 'MQTT_URL is not set (only `visq start` and `visq demo` run an embedded broker)');
  const { mqttUsername, mqttPassword } = await embeddedCredentials(rt.config.dataDir);
  const broker: RunningService = await startEmbeddedBroker(rt.config.embedded.mqttPort, rt.log, { username: mqttUsername, password: mqttPassword });
  rt.onStop(broker.stop);
  return broker.url;
}

/**
 * Waits for PostgreSQL (retrying for a while, saying why), migrates as the owner and grants the
 * application's role its rights, and returns a pool as the application's role.
 */
export async function openDatabase(rt: Runtime, urls: DatabaseUrls, waitSeconds = rt.config.startupWaitSeconds): Promise<Database> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate(urls.ownerUrl ?? urls.url, rt.log);
      if (urls.ownerUrl) await grantApplicationRole(urls.ownerUrl, urls.url, rt.log);
      break;
    } catch (err) {
      const why = (err as Error).message;
      if (err instanceof SchemaNotCurrentError) throw err;
      if (Date.now() > deadline) throw new Error(`cannot reach PostgreSQL at ${redact(urls.url)}: ${why}`);
      rt.waitingFor.set('database', `cannot reach PostgreSQL at ${redact(urls.url)} yet (${why}); retrying`);
      rt.log.warn({ database: redact(urls.url), err: why, attempt }, 'PostgreSQL not reachable yet; retrying');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  rt.waitingFor.delete('database');
  const db = createDatabase(urls.url, 20);
  rt.onStop(() => db.end());
  for (const warning of await roleWarnings(db)) rt.log.warn({ database: redact(urls.url) }, warning);
  return db;
}

async function waitForRedis(rt: Runtime, url: string, waitSeconds = rt.config.startupWaitSeconds): Promise<void> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const r = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: true, lazyConnect: true, retryStrategy: () => null });
    // connect() only says "Connection is closed."; the cause comes as an 'error' event.
    let cause: Error | null = null;
    r.on('error', (err) => { cause = err; });
    try {
      await r.connect();
      // Managed Redis services may refuse CONFIG: then there is nothing to warn about.
      const policy = await r.config('GET', 'maxmemory-policy').catch(() => null) as string[] | null;
      if (policy?.[1] && policy[1] !== 'noeviction') rt.log.warn({ policy: policy[1] }, 'Redis maxmemory-policy should be noeviction, or queued jobs can be evicted');
      rt.waitingFor.delete('queue');
      return;
    } catch (err) {
      const why = (cause ?? (err as Error)).message;
      if (Date.now() > deadline) throw new Error(`cannot reach Redis at ${redact(url)}: ${why}`);
      rt.waitingFor.set('queue', `cannot reach Redis at ${redact(url)} yet (${why}); retrying`);
      rt.log.warn({ redis: redact(url), err: why }, 'Redis not reachable yet; retrying');
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
  rt.waitingFor.set('models', `loading the model registry ${rt.config.modelsDir}`);
  const registry = await loadRegistry(rt.config.modelsDir);
  rt.waitingFor.delete('models');
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
      databaseUrl, intervalSeconds: config.storage.pruneIntervalSeconds, log,
    });
    service.start();
    rt.onStop(() => service.stop());
  });
}

const jobPolicy = (config: Config) => ({ attempts: config.jobAttempts, backoffMs: 2000, lockMs: config.jobLockMs });

export interface ApiHandle { port: number }

/** The HTTP API and the MES link (outbox relay, context, module state). */
export async function runApi(rt: Runtime, listener: Listener, db: Database, backend: QueueBackend, registry: ModelRegistry, databaseUrl: string, mqttUrl: string): Promise<ApiHandle> {
  const { config, log, metrics } = rt;
  const queue = createInspectionQueue(backend, jobPolicy(config));
  // Connection errors are retried by the queue; unheard, they would be printed as unhandled.
  queue.on('error', (err) => log.warn({ err: err.message }, 'queue connection error'));
  rt.onStop(() => queue.close());
  await queue.waitUntilReady();
  const link = new MesLink({ db, databaseUrl, mqttUrl, site: config.site, topicPrefix: config.topicPrefix, metrics, log });
  link.start();
  rt.onStop(() => link.stop());

  // A scrape reads the queue at most every 5 s, however often it comes.
  metrics.countQueueWith(cachedFor(5000, () => queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed')));
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

  const decodeSlots = new DecodeSlots(config.decoding.concurrency, config.decoding.perStation, config.decoding.maxWaitMs);
  const app = createHttpApp({
    db,
    decodeSlots,
    images: new FilesystemImageStore(config.imageDir),
    enqueue: (id) => enqueueInspection(queue, id),
    queueDepth: cachedFor(500, async () => {
      const c = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
      return (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0);
    }),
    maxQueueDepth: config.maxQueueDepth,
    idempotencyKeyHours: config.idempotencyKeyHours,
    captureTimeToleranceHours: config.captureTimeToleranceHours,
    stationRateLimit: config.stationRateLimit,
    modelInputs: (ids) => ids.flatMap((id) => registry.get(id)?.manifest.input ?? []),
    prepared: new PreparedInputs(config.preparedDir),
    storage,
    models: [...registry.values()].map(({ manifest: m }) => ({ id: m.id, version: m.version, task: m.task, measures: m.measures })),
    reviewChanges,
    sessionSeconds: config.sessionHours * 3600,
    trustProxy: config.trustProxy,
    site: config.site,
    metricsToken: config.metricsToken,
    limits: config.limits,
    metrics,
    log,
    readiness: {
      database: async () => (await ping(db), null),
      queue: async () => (await queue.getJobCounts('waiting'), null),
      broker: async () => link.readiness(),
      models: async () => (registry.size ? null : `no models in ${config.modelsDir}`),
      decoder: async () => decodeSlots.saturation(),
      storage: () => storage.readiness(),
    },
  });
  listener.serve(app);
  rt.onStop(async () => {
    // Live event streams never end on their own; end them so the server can close.
    await reviewChanges.stop();
    await listener.close();
  });
  const port = listener.port;
  rt.onStop(await announceProcess(db, 'api', loadedModels(registry), (err) => log.warn({ err: err.message }, 'cannot refresh this process in the processes table')));
  log.info({ port, queue: backend.kind }, 'HTTP API listening');
  return { port };
}

/** Inspection workers: a BullMQ worker whose jobs run inference on a pool of threads. */
export async function runWorker(rt: Runtime, db: Database, backend: QueueBackend, registry: ModelRegistry, databaseUrl: string): Promise<void> {
  const { config, log, metrics } = rt;
  const store = new FilesystemImageStore(config.imageDir);
  const threads = config.inferenceThreads ?? os.availableParallelism();
  const pool = new InferencePool(registry, config.imageDir, config.preparedDir, config.limits.imagePixels, threads, config.batching);
  // The first part after a start must not pay for loading and setting up the sessions.
  await pool.warmUp();
  const restoreOverlays = async (revived: Overlay[]) => {
    for (const o of revived) {
      // Without its bytes (it cannot happen: the pool returns them), the job's retry makes the overlay again.
      if (!o.data) throw new Error(`overlay ${o.sha256} was removed by the pruner while the inspection was decided`);
      await store.put(o.data);
    }
  };
  // Marking an inspection running need not wait for the disk: after a crash it is queued again, which the processor handles the same.
  const claims = createDatabase(databaseUrl, 4, { durableCommits: false });
  rt.onStop(() => claims.end());
  const decisions = new GroupCommit((items: DecisionToRecord[]) => recordDecisions(db, items, restoreOverlays), 64, (n) => metrics.decisionsPerCommit.observe(n));
  const processor = createInspectionProcessor({
    claimInspection: (id) => claimInspection(claims, id),
    recordDecision: (work, decision, models, overlays) => decisions.submit({ work, decision, models, overlays }),
    pool, registry, metrics, log,
  });
  const worker = createInspectionWorker(backend, processor, config.workerConcurrency ?? threads * Math.max(2, config.batching.maxBatch), jobPolicy(config));
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
    recordDecision: (work, decision) => decisions.submit({ work, decision, models: [], overlays: [] }),
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
  const listener = await Listener.open(rt);
  const registry = await openRegistry(rt);
  const databaseUrls = await resolveDatabaseUrls(rt, true);
  const mqttUrl = await resolveMqttUrl(rt, true);
  const db = await openDatabase(rt, databaseUrls);
  const backend = await openQueueBackend(rt, databaseUrls.url);
  // Started after the API so that it stops first: jobs in hand finish while the MES link can still relay their verdicts.
  const { port } = await runApi(rt, listener, db, backend, registry, databaseUrls.url, mqttUrl);
  await runWorker(rt, db, backend, registry, databaseUrls.url);
  return { port, db, registry, mqttUrl };
}
