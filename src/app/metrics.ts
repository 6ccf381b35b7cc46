import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What /metrics says of the image store: the pruner's last measure (per class, with what it has removed so far) and the limits. */
export interface StorageReading {
  classes: Partial<Record<string, { files: number; bytes: number; prunedFiles: number; prunedBytes: number }>>;
  quotaBytes: number;
  volumeFreeBytes: number;
}

const latencyBuckets = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** One registry per process; every part registers what it measures here. */
export function createMetrics() {
  const registry = new Registry();
  let queueCounts: (() => Promise<Record<string, number>>) | null = null;
  let storage: (() => Promise<StorageReading>) | null = null;
  // A scrape while the database is away shows no storage figures.
  const readStorage = async () => (storage ? storage().catch(() => null) : null);
  const perClass = (name: string, help: string, pick: (c: NonNullable<StorageReading['classes'][string]>) => number) => new Gauge({
    name, help, labelNames: ['class'], registers: [registry],
    async collect() {
      const r = await readStorage();
      for (const [c, v] of Object.entries(r?.classes ?? {})) if (v) this.set({ class: c }, pick(v));
    },
  });
  collectDefaultMetrics({ register: registry, prefix: 'visq_' });
  return {
    registry,
    httpRequests: new Histogram({
      name: 'visq_http_request_duration_seconds', help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'], buckets: latencyBuckets, registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'visq_queue_jobs', help: 'Inspection jobs by state', labelNames: ['state'], registers: [registry],
      async collect() {
        const counts: Record<string, number> = queueCounts ? await queueCounts().catch(() => ({})) : {}; // a scrape while the queue is away shows no counts
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    }),
    /** The queue-depth gauge asks this at each scrape. */
    countQueueWith(source: () => Promise<Record<string, number>>) { queueCounts = source; },
    preprocessing: new Histogram({ name: 'visq_preprocess_duration_seconds', help: 'Image decoding and resizing per inspection', buckets: latencyBuckets, registers: [registry] }),
    inference: new Histogram({ name: 'visq_inference_duration_seconds', help: 'ONNX model time per inspection (all images and models)', buckets: latencyBuckets, registers: [registry] }),
    decisionsPerCommit: new Histogram({ name: 'visq_decisions_per_commit', help: 'Decisions recorded by one transaction (group commit)', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [registry] }),
    batchImages: new Histogram({ name: 'visq_inference_batch_images', help: 'Images in the largest model run of each inspection (dynamic batching)', buckets: [1, 2, 4, 8, 16, 32], registers: [registry] }),
    decisionLatency: new Histogram({ name: 'visq_decision_latency_seconds', help: 'From upload received to verdict stored', buckets: latencyBuckets, registers: [registry] }),
    deliveryLatency: new Histogram({ name: 'visq_verdict_delivery_latency_seconds', help: 'From upload received to the broker acknowledging the verdict', buckets: latencyBuckets, registers: [registry] }),
    verdicts: new Counter({ name: 'visq_verdicts_total', help: 'Decided inspections by verdict', labelNames: ['verdict'], registers: [registry] }),
    uploads: new Counter({ name: 'visq_uploads_total', help: 'Upload outcomes', labelNames: ['outcome'], registers: [registry] }),
    outboxUnsent: new Gauge({ name: 'visq_outbox_unsent', help: 'Verdict messages stored but not yet acknowledged by the broker', registers: [registry] }),
    mqttPublished: new Counter({ name: 'visq_mqtt_published_total', help: 'Verdict messages acknowledged by the broker', registers: [registry] }),
    contextRejected: new Counter({ name: 'visq_mes_context_rejected_total', help: 'MES context messages ignored, by reason', labelNames: ['reason'], registers: [registry] }),
    storedBytes: perClass('visq_image_store_bytes', 'Bytes in the image store by class (pass, fail, review, disposed, overlay, undecided, prepared), as the pruner last measured', (c) => c.bytes),
    storedFiles: perClass('visq_image_store_files', 'Files in the image store by class, as the pruner last measured', (c) => c.files),
    prunedBytes: perClass('visq_image_store_pruned_bytes', 'Bytes the pruner has removed by class, since the database was created', (c) => c.prunedBytes),
    prunedFiles: perClass('visq_image_store_pruned_files', 'Files the pruner has removed by class, since the database was created', (c) => c.prunedFiles),
    quotaBytes: new Gauge({
      name: 'visq_image_store_quota_bytes', help: 'The image store\'s quota (uploads get 507 above it)', registers: [registry],
      async collect() { const r = await readStorage(); if (r) this.set(r.quotaBytes); },
    }),
    volumeFreeBytes: new Gauge({
      name: 'visq_image_store_volume_free_bytes', help: 'Free space on the image store\'s volume', registers: [registry],
      async collect() { const r = await readStorage(); if (r) this.set(r.volumeFreeBytes); },
    }),
    /** The storage gauges ask this at each scrape. */
    readStorageWith(source: () => Promise<StorageReading>) { storage = source; },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
