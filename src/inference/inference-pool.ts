import os from 'node:os';
import { Piscina } from 'piscina';
import type { ModelRegistry } from './model-registry.js';
import type { InferenceResult, InferenceTask, InferenceThreadData } from './inference-thread.js';

/** Worker threads that run preprocessing and ONNX inference off the event loop. */
export class InferencePool {
  private readonly piscina: Piscina;

  constructor(registry: ModelRegistry, imageDir: string, preparedDir: string, maxPixels: number, threads = os.availableParallelism()) {
    const workerData: InferenceThreadData = {
      imageDir,
      preparedDir,
      maxPixels,
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

  run(task: InferenceTask): Promise<InferenceResult> {
    return this.piscina.run(task);
  }

  async close(): Promise<void> {
    await this.piscina.close({ force: false });
  }
}
