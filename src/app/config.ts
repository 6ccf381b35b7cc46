import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { describeIssues } from '../validation-issues.js';
import { InvalidInputError } from '../errors.js';
import { parseDuration, parseSize, type RetentionPolicy } from '../images/retention.js';

/** A configuration problem: the message names the environment variable. */
/** A bad environment variable: the process stops with a message naming it (exit 2). */
export class ConfigError extends InvalidInputError {}

const url = (protocols: string[]) =>
  z
    .string()
    .refine((v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

const port = z.coerce.number().int().min(0).max(65535);
/** A zod string read by a parser that throws with a message (durations, sizes). */
const parsedBy = <T>(parse: (v: string) => T) => z.string().transform((v, ctx) => {
  try {
    return parse(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const minAge = (d: string) => parsedBy((v) => parseDuration(v, false)!).prefault(d);
const maxAge = (d: string) => parsedBy((v) => parseDuration(v, true)).prefault(d);
const percent = z.coerce.number().gt(0).max(100);
const positiveInt = z.coerce.number().int().positive();

const envSchema = z.object({
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  /** A role that owns the schema: runs the migrations and grants DATABASE_URL's role its rights. */
  VISQ_MIGRATION_DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  MQTT_URL: url(['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:']).optional(),
  VISQ_HTTP_PORT: port.default(8080),
  VISQ_HTTP_HOST: z.string().min(1).default('0.0.0.0'),
  VISQ_DATA_DIR: z.string().min(1).default('./data'),
  VISQ_MODELS_DIR: z.string().min(1).default('./models'),
  VISQ_SITE: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" or "-" (it is an MQTT topic level)').default('site1'),
  VISQ_TOPIC_PREFIX: z.string().regex(/^[A-Za-z0-9_/-]+$/, 'letters, digits, "_", "-" or "/"').default('visq'),
  /** Port of the embedded PostgreSQL when DATABASE_URL is unset; 0 picks a free one. */
  VISQ_EMBEDDED_PG_PORT: port.default(54329),
  /** Port of the embedded MQTT broker when MQTT_URL is unset; 0 picks a free one. */
  VISQ_EMBEDDED_MQTT_PORT: port.default(1883),
  VISQ_MAX_IMAGE_BYTES: positiveInt.default(25 * 1024 * 1024),
  VISQ_MAX_IMAGE_PIXELS: positiveInt.default(50_000_000),
  VISQ_MAX_IMAGES_PER_INSPECTION: positiveInt.default(8),
  /** Pixels on an image's longer side, and how elongated it may be: what bounds a decode's memory and time beside the pixel count. */
  VISQ_MAX_IMAGE_SIDE: positiveInt.default(20_000),
  VISQ_MAX_IMAGE_ASPECT: positiveInt.default(20),
  /** Uploads decoded at once by one API process (the rest wait, then 503), and of them at most this many from one station (429). */
  VISQ_DECODE_CONCURRENCY: positiveInt.default(Math.max(1, Math.min(4, os.availableParallelism()))),
  VISQ_STATION_DECODE_CONCURRENCY: positiveInt.default(2),
  /** How long an upload waits for a decoder before it is answered 503 with Retry-After. */
  VISQ_DECODE_WAIT_MS: positiveInt.default(5000),
  /** Inference threads per worker process; defaults to the number of cores. */
  VISQ_INFERENCE_THREADS: positiveInt.optional(),
  /** Jobs one worker process holds at once; by default enough to fill a batch on every thread. */
  VISQ_WORKER_CONCURRENCY: positiveInt.optional(),
  /**
   * Inspections an inference thread takes at once (dynamic batching); 1 turns batching off. 8, as
   * measured (README, Benchmark): a model that is the bottleneck gains, a fast one is unaffected.
   */
  VISQ_MAX_BATCH: positiveInt.default(8),
  /** How long a free inference thread waits for a batch to fill; 0 takes whatever is waiting, so light load never waits. */
  VISQ_MAX_BATCH_DELAY_MS: z.coerce.number().int().min(0).max(1000).default(0),
  /** With backoff from 2 s doubling, 5 tries span about 30 s: a database restart does not turn into REVIEW verdicts. */
  VISQ_JOB_ATTEMPTS: positiveInt.default(5),
  /** An inspection still undecided this long after upload is checked for a lost or failed job. */
  VISQ_RECONCILE_AFTER_SECONDS: positiveInt.default(30),
  /** Namespace of the queue's keys in a shared Redis. */
  VISQ_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" or "-"').default('visq'),
  /** How long a worker's claim on a job lasts; a killed worker's jobs are retried after about this long. */
  VISQ_JOB_LOCK_MS: positiveInt.default(30_000),
  /** How far a capture time may lie from the upload's arrival before the upload is refused. */
  VISQ_CAPTURE_TIME_TOLERANCE_HOURS: positiveInt.default(24),
  /** How long a station's Idempotency-Key holds: a repeat within it is answered with the first inspection. */
  VISQ_IDEMPOTENCY_KEY_HOURS: positiveInt.default(24),
  /** Uploads get 503 with Retry-After while more inspections than this wait in the queue. */
  VISQ_MAX_QUEUE_DEPTH: positiveInt.default(5000),
  /** Uploads per second one station may make (each API process counts on its own). */
  VISQ_STATION_RATE_LIMIT: positiveInt.default(50),
  /** How long a starting process waits for an unreachable database or Redis before it exits 1. */
  VISQ_STARTUP_WAIT_SECONDS: z.coerce.number().int().min(0).default(60),
  /** Which proxies' X-Forwarded-* headers to believe (express "trust proxy"): a TLS proxy on another host must be named here. */
  VISQ_TRUST_PROXY: z.string().min(1).default('loopback').transform((v) => (/^\d+$/.test(v) ? Number(v) : v)),
  /** How long a workbench sign-in lasts (a shift and some). */
  VISQ_SESSION_HOURS: positiveInt.default(12),
  /** The bearer token /metrics asks for; without it /metrics answers this host (loopback) only. */
  VISQ_METRICS_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  /** The image store's quota (bytes with a unit, or a share of its volume); uploads get 507 above it. */
  VISQ_STORAGE_QUOTA: parsedBy(parseSize).prefault('80%'),
  /** Percent of the quota above which the pruner starts, and down to which it prunes. */
  VISQ_STORAGE_HIGH_WATERMARK: percent.default(90),
  VISQ_STORAGE_LOW_WATERMARK: percent.default(80),
  /** Free space the volume keeps whatever the quota (PostgreSQL and the system need it): uploads get 507 below it. */
  VISQ_STORAGE_MIN_FREE: parsedBy(parseSize).prefault('5%'),
  VISQ_RETAIN_PASS_MIN_AGE: minAge('7d'),
  VISQ_RETAIN_PASS_MAX_AGE: maxAge('none'),
  VISQ_RETAIN_FAIL_MIN_AGE: minAge('365d'),
  VISQ_RETAIN_FAIL_MAX_AGE: maxAge('none'),
  VISQ_RETAIN_DISPOSED_MIN_AGE: minAge('365d'),
  VISQ_RETAIN_DISPOSED_MAX_AGE: maxAge('none'),
  VISQ_RETAIN_OVERLAY_MIN_AGE: minAge('30d'),
  VISQ_RETAIN_OVERLAY_MAX_AGE: maxAge('none'),
  VISQ_RETAIN_PREPARED_MIN_AGE: minAge('0'),
  VISQ_RETAIN_PREPARED_MAX_AGE: maxAge('1h'),
  /** How often the pruner looks at the store (it is also woken at once when an upload finds the store over its high watermark). */
  VISQ_PRUNE_INTERVAL_SECONDS: positiveInt.default(60),
  VISQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}).superRefine((e, ctx) => {
  if (e.VISQ_STORAGE_LOW_WATERMARK >= e.VISQ_STORAGE_HIGH_WATERMARK) {
    ctx.addIssue({ code: 'custom', path: ['VISQ_STORAGE_LOW_WATERMARK'], message: `must be below VISQ_STORAGE_HIGH_WATERMARK (${e.VISQ_STORAGE_HIGH_WATERMARK})` });
  }
  for (const c of ['PASS', 'FAIL', 'DISPOSED', 'OVERLAY', 'PREPARED'] as const) {
    const min = e[`VISQ_RETAIN_${c}_MIN_AGE`];
    const max = e[`VISQ_RETAIN_${c}_MAX_AGE`];
    if (max !== null && max < min) ctx.addIssue({ code: 'custom', path: [`VISQ_RETAIN_${c}_MAX_AGE`], message: `must not be shorter than VISQ_RETAIN_${c}_MIN_AGE` });
  }
});

export type Config = ReturnType<typeof loadConfig>;

/** Reads the environment once into one typed object; a bad value is an error naming its variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error);
    throw new ConfigError('invalid_configuration', `invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.VISQ_DATA_DIR);
  return {
    redisUrl: e.REDIS_URL,
    databaseUrl: e.DATABASE_URL,
    migrationDatabaseUrl: e.VISQ_MIGRATION_DATABASE_URL,
    mqttUrl: e.MQTT_URL,
    http: { port: e.VISQ_HTTP_PORT, host: e.VISQ_HTTP_HOST },
    dataDir,
    imageDir: path.join(dataDir, 'images'),
    preparedDir: path.join(dataDir, 'prepared'),
    modelsDir: path.resolve(e.VISQ_MODELS_DIR),
    site: e.VISQ_SITE,
    topicPrefix: e.VISQ_TOPIC_PREFIX,
    embedded: { postgresPort: e.VISQ_EMBEDDED_PG_PORT, mqttPort: e.VISQ_EMBEDDED_MQTT_PORT },
    limits: {
      imageBytes: e.VISQ_MAX_IMAGE_BYTES,
      imagePixels: e.VISQ_MAX_IMAGE_PIXELS,
      imagesPerInspection: e.VISQ_MAX_IMAGES_PER_INSPECTION,
      imageSide: e.VISQ_MAX_IMAGE_SIDE,
      imageAspect: e.VISQ_MAX_IMAGE_ASPECT,
    },
    decoding: { concurrency: e.VISQ_DECODE_CONCURRENCY, perStation: e.VISQ_STATION_DECODE_CONCURRENCY, maxWaitMs: e.VISQ_DECODE_WAIT_MS },
    inferenceThreads: e.VISQ_INFERENCE_THREADS,
    workerConcurrency: e.VISQ_WORKER_CONCURRENCY,
    batching: { maxBatch: e.VISQ_MAX_BATCH, maxDelayMs: e.VISQ_MAX_BATCH_DELAY_MS },
    jobAttempts: e.VISQ_JOB_ATTEMPTS,
    reconcileAfterSeconds: e.VISQ_RECONCILE_AFTER_SECONDS,
    queuePrefix: e.VISQ_QUEUE_PREFIX,
    jobLockMs: e.VISQ_JOB_LOCK_MS,
    logLevel: e.VISQ_LOG_LEVEL,
    startupWaitSeconds: e.VISQ_STARTUP_WAIT_SECONDS,
    maxQueueDepth: e.VISQ_MAX_QUEUE_DEPTH,
    idempotencyKeyHours: e.VISQ_IDEMPOTENCY_KEY_HOURS,
    captureTimeToleranceHours: e.VISQ_CAPTURE_TIME_TOLERANCE_HOURS,
    stationRateLimit: e.VISQ_STATION_RATE_LIMIT,
    sessionHours: e.VISQ_SESSION_HOURS,
    trustProxy: e.VISQ_TRUST_PROXY,
    metricsToken: e.VISQ_METRICS_TOKEN ?? null,
    storage: {
      quota: e.VISQ_STORAGE_QUOTA,
      highWatermarkPercent: e.VISQ_STORAGE_HIGH_WATERMARK,
      lowWatermarkPercent: e.VISQ_STORAGE_LOW_WATERMARK,
      minFree: e.VISQ_STORAGE_MIN_FREE,
      pruneIntervalSeconds: e.VISQ_PRUNE_INTERVAL_SECONDS,
      retention: {
        pass: { minSeconds: e.VISQ_RETAIN_PASS_MIN_AGE, maxSeconds: e.VISQ_RETAIN_PASS_MAX_AGE },
        fail: { minSeconds: e.VISQ_RETAIN_FAIL_MIN_AGE, maxSeconds: e.VISQ_RETAIN_FAIL_MAX_AGE },
        disposed: { minSeconds: e.VISQ_RETAIN_DISPOSED_MIN_AGE, maxSeconds: e.VISQ_RETAIN_DISPOSED_MAX_AGE },
        overlay: { minSeconds: e.VISQ_RETAIN_OVERLAY_MIN_AGE, maxSeconds: e.VISQ_RETAIN_OVERLAY_MAX_AGE },
        prepared: { minSeconds: e.VISQ_RETAIN_PREPARED_MIN_AGE, maxSeconds: e.VISQ_RETAIN_PREPARED_MAX_AGE },
      } satisfies RetentionPolicy,
    },
  };
}
