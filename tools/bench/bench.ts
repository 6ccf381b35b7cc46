/**
 * `npm run bench`: end-to-end throughput and latency of the pipeline (camera HTTP upload → MQTT
 * verdict at the MES) against the raw throughput of the same model called directly through
 * onnxruntime-node on the same preprocessed input, in one run on this machine.
 */
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { loadConfig } from '../../src/app/config.js';
import { loadModelFolder } from '../../src/inference/model-registry.js';
import { toInputTensor } from '../../src/inference/preprocess.js';
import { postInspection, root, round, startVisq, summary } from './visq-under-test.js';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '8' },
    light: { type: 'string', default: '40' },
    model: { type: 'string', default: 'surface-anomaly' },
  },
});
const seconds = Number(args.seconds);
const concurrency = Number(args.concurrency);
const lightCount = Number(args.light);
const threads = loadConfig().inferenceThreads ?? os.availableParallelism();
const say = (s: string) => { if (!args.json) process.stderr.write(`${s}\n`); };

/** The model alone: `threads` worker threads, one session each (as the pipeline's pool), running back to back. */
async function rawModel(onnxPath: string, inputName: string, data: Float32Array, dims: number[]) {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const ort = require(${JSON.stringify(path.join(root, 'node_modules', 'onnxruntime-node'))});
    (async () => {
      const s = await ort.InferenceSession.create(workerData.onnxPath, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
      const feeds = { [workerData.inputName]: new ort.Tensor('float32', new Float32Array(workerData.data), workerData.dims) };
      for (let i = 0; i < 5; i++) await s.run(feeds);
      const times = []; const end = Date.now() + workerData.ms;
      while (Date.now() < end) { const t = performance.now(); await s.run(feeds); times.push(performance.now() - t); }
      parentPort.postMessage(times);
    })();`;
  const run = (n: number, ms: number) => Promise.all(Array.from({ length: n }, () => new Promise<number[]>((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { onnxPath, inputName, data, dims, ms } });
    w.once('message', (t) => { resolve(t); void w.terminate(); });
    w.once('error', reject);
  })));
  const single = (await run(1, 4000)).flat();
  const parallel = await run(threads, seconds * 1000 / 2);
  const total = parallel.reduce((a, t) => a + t.length, 0);
  return { oneCoreMs: summary(single), throughput: round(total / (seconds / 2), 1), threads };
}

async function main() {
  const modelsDir = process.env.VISQ_MODELS_DIR ?? path.join(root, 'models');
  const model = await loadModelFolder(path.join(modelsDir, args.model!));
  const goodDir = path.join(root, 'fixtures', 'images', 'machined-surface', 'good');
  const image = await readFile(path.join(goodDir, (await readdir(goodDir)).filter((f) => f.endsWith('.png')).sort()[0]!));
  const tensor = await toInputTensor(image, model.manifest.input, 50_000_000);

  say(`raw model: ${model.manifest.id}@${model.manifest.version}, ${threads} thread(s), ${seconds / 2} s…`);
  const raw = await rawModel(model.onnxPath, model.manifest.input.name, tensor.data, tensor.dims);

  // The benchmark measures the pipeline, not the per-station rate limit.
  const visq = await startVisq('bench', modelsDir, { VISQ_STATION_RATE_LIMIT: '100000' });
  try {
    const mes = await mqtt.connectAsync(visq.mqttUrl);
    const arrived = new Map<string, number>();
    const waiting = new Map<string, (at: number) => void>();
    mes.on('message', (_t, payload) => {
      const id = JSON.parse(payload.toString()).id as string;
      const at = performance.now();
      arrived.set(id, at);
      waiting.get(id)?.(at);
    });
    await mes.subscribeAsync(`${visq.topicPrefix}/+/+/+/verdict`, { qos: 1 });

    const upload = async (serial: string) => {
      const t = performance.now();
      const res = await postInspection(visq, image, serial, 'BENCH');
      if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
      return { id: ((await res.json()) as { id: string }).id, t };
    };
    const waitFor = (id: string) => new Promise<number>((resolve) => {
      const at = arrived.get(id);
      if (at !== undefined) resolve(at);
      else waiting.set(id, (t) => { waiting.delete(id); resolve(t); });
    });

    say('light load: one upload at a time…');
    for (let i = 0; i < 5; i++) { const u = await upload(`warm-${i}`); await waitFor(u.id); }
    const light: number[] = [];
    for (let i = 0; i < lightCount; i++) {
      const u = await upload(`light-${i}`);
      light.push((await waitFor(u.id)) - u.t);
    }

    // Closed loop: each camera posts its next part once the MES has the verdict of the previous one,
    // so the pipeline stays full without an ever-growing queue, and latencies are those of a full pipeline.
    say(`saturation: ${concurrency} cameras, each posting its next part when the previous verdict arrives, for ${seconds} s…`);
    const latencies: number[] = [];
    let n = 0;
    let failed = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const u = await upload(`sat-${n++}`).catch(() => null);
        if (!u) { failed++; continue; }
        latencies.push((await waitFor(u.id)) - u.t);
      }
    }));
    const elapsed = (performance.now() - start) / 1000;
    const throughput = round(latencies.length / elapsed, 1);
    await mes.endAsync();

    const queue = process.env.REDIS_URL ? 'redis' : 'postgres';
    const result = {
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model, node: process.version },
      model: { id: model.manifest.id, version: model.manifest.version, input: `${model.manifest.input.width}x${model.manifest.input.height}` },
      queue, inferenceThreads: threads,
      raw: { throughputPerSecond: raw.throughput, oneCoreLatencyMs: raw.oneCoreMs },
      endToEnd: { throughputPerSecond: throughput, images: latencies.length, failedUploads: failed, latencyMs: summary(latencies), concurrency },
      lightLoad: { latencyMs: summary(light), overRawP50Ms: round(summary(light).p50 - raw.oneCoreMs.p50) },
      ratio: round(throughput / raw.throughput, 3),
    };
    if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const r = result;
      process.stdout.write([
        `visq bench — ${r.machine.cores} cores (${r.machine.cpu}), node ${r.machine.node}, queue: ${r.queue}, model ${r.model.id}@${r.model.version} (${r.model.input}), ${threads} inference thread(s)`,
        `raw model (onnxruntime-node, same input): ${r.raw.throughputPerSecond} images/s on ${threads} thread(s); one core p50 ${r.raw.oneCoreLatencyMs.p50} ms`,
        `end to end (HTTP upload → MQTT verdict):  ${r.endToEnd.throughputPerSecond} images/s with ${concurrency} cameras (${r.endToEnd.images} verdicts, ${r.endToEnd.failedUploads} failed uploads)`,
        `  latency at saturation p50/p95/p99: ${r.endToEnd.latencyMs.p50} / ${r.endToEnd.latencyMs.p95} / ${r.endToEnd.latencyMs.p99} ms`,
        `  latency at light load p50/p95/p99: ${r.lightLoad.latencyMs.p50} / ${r.lightLoad.latencyMs.p95} / ${r.lightLoad.latencyMs.p99} ms (p50 is ${r.lightLoad.overRawP50Ms} ms over the raw model's)`,
        `ratio end-to-end ÷ raw: ${r.ratio}`,
      ].join('\n') + '\n');
    }
    if (failed) process.exitCode = 1;
  } finally {
    await visq.stop();
  }
}

await main();
