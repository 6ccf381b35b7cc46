import { Queue, Worker, createPostgresBackend, type Job, type Processor } from 'bullmq';
import { Redis } from 'ioredis';

export const inspectionQueueName = 'inspections';

export interface InspectionJobData { inspectionId: string }

/**
 * Where the queue lives: Redis when REDIS_URL is set, otherwise BullMQ's PostgreSQL backend
 * (in its own `bullmq` schema of the same database), so a single edge box needs no Redis.
 */
export type QueueBackend = { kind: 'redis'; url: string; prefix: string } | { kind: 'postgres'; url: string };

export function queueBackendFor(redisUrl: string | undefined, redisPrefix: string, databaseUrl: string): QueueBackend {
  return redisUrl ? { kind: 'redis', url: redisUrl, prefix: redisPrefix } : { kind: 'postgres', url: databaseUrl };
}

export interface JobPolicy { attempts: number; backoffMs: number; lockMs: number }

export function createInspectionQueue(backend: QueueBackend, policy: JobPolicy): Queue<InspectionJobData> {
  const defaultJobOptions = {
    attempts: policy.attempts,
    backoff: { type: 'exponential', delay: policy.backoffMs },
    // The verdict lives in PostgreSQL; finished jobs are only kept for a while for inspection.
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
  if (backend.kind === 'redis') {
    // Fail fast on the API side: an upload must get an answer, not hang while Redis is away.
    const connection = new Redis(backend.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    connection.on('error', () => {});
    return new Queue<InspectionJobData>(inspectionQueueName, { connection, prefix: backend.prefix, defaultJobOptions });
  }
  return new Queue<InspectionJobData>(inspectionQueueName, { connection: { connectionString: backend.url, migrate: true, max: 4 } as never, defaultJobOptions } as never, createPostgresBackend as never);
}

export function createInspectionWorker(
  backend: QueueBackend,
  processor: Processor<InspectionJobData>,
  concurrency: number,
  policy: JobPolicy,
): Worker<InspectionJobData> {
  const opts = {
    concurrency,
    // A worker killed mid-job leaves a stalled job: once its lock lapses it goes back to the queue.
    lockDuration: policy.lockMs,
    stalledInterval: Math.max(1000, Math.round(policy.lockMs / 2)),
    maxStalledCount: 3,
    autorun: false,
  };
  if (backend.kind === 'redis') {
    const connection = new Redis(backend.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {});
    return new Worker<InspectionJobData>(inspectionQueueName, processor, { ...opts, connection, prefix: backend.prefix });
  }
  return new Worker<InspectionJobData>(inspectionQueueName, processor, { ...opts, connection: { connectionString: backend.url, migrate: true, max: 4 } } as never, createPostgresBackend as never);
}

export type InspectionJob = Job<InspectionJobData>;

/** Job ids are the inspection ids, so adding the same inspection twice is a no-op. */
export async function enqueueInspection(queue: Queue<InspectionJobData>, inspectionId: string): Promise<void> {
  await queue.add('inspect', { inspectionId }, { jobId: inspectionId });
}
