import os from 'node:os';
import { Piscina } from 'piscina';
import type { ModelRegistry } from './model-registry.js';
import type { BatchOutcome, InferenceResult, InferenceTask, InferenceThreadData } from './inference-thread.js';

export interface Batching {
  /** Inspections one thread takes at once; their images run through each model together. */
  maxBatch: number;
  /** How long a free thread waits for a batch to fill; 0 takes whatever is waiting. */
  maxDelayMs: number;
}

interface Waiting { task: InferenceTask; at: number; resolve: (r: InferenceResult) => void; reject: (e: Error) => void }

/**
 * Worker threads that run preprocessing and ONNX inference off the event loop, with dynamic
 * batching as Triton's dynamic batcher does it: while every thread is busy, inspections wait here,
 * and a thread that comes free takes up to `maxBatch` of them at once (after at most `maxDelayMs`
 * for more to arrive). At light load nothing waits; under load each model runs on several images
 * per call where it takes batches (inference-thread.ts).
 */
export class InferencePool {
  private readonly piscina: Piscina;
  private readonly waiting: Waiting[] = [];
  private busy = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    registry: ModelRegistry, imageDir: string, preparedDir: string, maxPixels: number,
    threads = os.availableParallelism(), private readonly batching: Batching = { maxBatch: 1, maxDelayMs: 0 },
  ) {
    const workerData: InferenceThreadData = {
      imageDir,
      preparedDir,
      maxPixels,
      maxBatch: batching.maxBatch,
      models: [...registry.values()].map((m) => ({ manifest: m.manifest, onnxPath: m.onnxPath })),
    };
    this.piscina = new Piscina({
      filename: new URL('./inference-thread.js', import.meta.url).href,
      workerData,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Infinity,
    });
  }

  get threads(): number {
    return this.piscina.options.maxThreads;
  }

  /** Resolves when every thread has loaded its sessions and run each model once. */
  async warmUp(): Promise<void> {
    // A thread takes one task at a time, so as many tasks as threads reach every thread.
    await Promise.all(Array.from({ length: this.threads }, () => this.piscina.run(null, { name: 'warmUp' })));
  }

  /** One inspection's images through its models; rejects when its job should be retried. */
  run(task: InferenceTask): Promise<InferenceResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ task, at: performance.now(), resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.busy < this.threads && this.waiting.length > 0) {
      const { maxBatch, maxDelayMs } = this.batching;
      if (this.waiting.length < maxBatch && maxDelayMs > 0) {
        const left = maxDelayMs - (performance.now() - this.waiting[0]!.at);
        if (left > 0) {
          this.timer ??= setTimeout(() => { this.timer = null; this.dispatch(); }, left);
          return;
        }
      }
      const batch = this.waiting.splice(0, maxBatch);
      this.busy++;
      this.piscina.run(batch.map((w) => w.task)).then(
        (outcomes: BatchOutcome[]) => batch.forEach((w, i) => {
          const o = outcomes[i]!;
          if ('result' in o) w.resolve(o.result);
          else w.reject(new Error(o.error));
        }),
        (err: Error) => batch.forEach((w) => w.reject(err)),
      ).finally(() => {
        this.busy--;
        this.dispatch();
      });
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.piscina.close({ force: false });
  }
}
