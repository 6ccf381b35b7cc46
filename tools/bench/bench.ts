/**
 * `npm run bench`: in one run on this machine, the same model on the same images (camera-images.ts) through
 *  - the raw model: onnxruntime-node called back to back in as many threads as visq uses;
 *  - a bare HTTP inference server (tools/bench/peer-server.ts): no queue, database or broker;
 *  - visq end to end (camera HTTP upload → verdict at an MQTT client), on embedded defaults and with
 *    a Redis queue;
 * each at light load (one image at a time) and at saturation (cameras in a closed loop), with the CPU
 * every process and thread spent per image at saturation. `--json` writes the whole result.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import { loadConfig } from '../../src/app/config.js';
import { freePort } from '../../src/embedded/embedded-services.js';
import { loadModelFolder } from '../../src/inference/model-registry.js';
import { toInputTensor } from '../../src/inference/preprocess.js';
import { benchModels, benchPlanFile, buildBenchModel } from './bench-models.js';
import { cameraImages } from './camera-images.js';
import { cpuByPart, cpuSpent } from './cpu.js';
import { summarizeProfiles } from './profiles.js';
import { postInspection, root, round, sleep, startVisq, summary, type VisqUnderTest } from './visq-under-test.js';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '8' },
    light: { type: 'string', default: '40' },
    model: { type: 'string', default: 'surface-anomaly' },
    variants: { type: 'string', default: 'embedded,redis' },
    profile: { type: 'boolean', default: false },
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
  return { throughputPerSecond: round(total / (seconds / 2), 1), lightLoadMs: summary(single) };
}

interface Measured {
  throughputPerSecond: number;
  images: number;
  failed: number;
  saturationMs: ReturnType<typeof summary>;
  lightLoadMs: ReturnType<typeof summary>;
  /** CPU milliseconds per image at saturation, by process and thread. */
  cpuMsPerImage: Record<string, number>;
  /** Time inside the model's run (session.run) per image; at saturation it includes waiting for a core. */
  modelWallMsPerImage: number;
  /**
   * CPU per image of everything but the model and the bench client: the server's CPU per image less
   * the model's own CPU, taken as the raw model's one-thread p50 on an otherwise idle machine.
   */
  outsideModelMsPerImage: number;
  /** visq at saturation: images per model run (dynamic batching) and decisions per transaction (group commit), on average. */
  imagesPerModelRun?: number;
  decisionsPerCommit?: number;
}

/** Running totals a server reports; measure() takes their growth over the saturation phase. */
interface ServerCounters { modelMs: number; batchImages?: [sum: number, count: number]; decisionsPerCommit?: [sum: number, count: number] }

/**
 * Light load, then a closed loop: each camera sends its next image once the answer to the previous
 * one is back, so the system stays full without a growing queue.
 */
async function measure(send: (camera: number, serial: string) => Promise<number>, cpu: () => Map<string, number>, counters: () => Promise<ServerCounters>, modelCpuMs: number): Promise<Measured> {
  for (let i = 0; i < 5; i++) await send(0, `warm-${i}`);
  const light: number[] = [];
  for (let i = 0; i < lightCount; i++) light.push(await send(0, `light-${i}`));
  const latencies: number[] = [];
  let n = 0;
  let failed = 0;
  const cpuBefore = cpu();
  const before = await counters();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async (_, camera) => {
    while (performance.now() < end) {
      try {
        latencies.push(await send(camera, `sat-${n++}`));
      } catch {
        failed++;
      }
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  const spent = cpuSpent(cpuBefore, cpu());
  const after = await counters();
  const model = after.modelMs - before.modelMs;
  const mean = (a?: [number, number], b?: [number, number]) => (a && b && a[1] > b[1] ? round((a[0] - b[0]) / (a[1] - b[1]), 2) : undefined);
  const images = latencies.length;
  const perImage = (ms: number) => round(ms / Math.max(1, images), 2);
  const cpuMsPerImage = Object.fromEntries([...spent].filter(([, ms]) => ms > 0).sort(([a], [b]) => a.localeCompare(b)).map(([part, ms]) => [part, perImage(ms)]));
  const serverMs = [...spent].filter(([part]) => part !== 'bench client').reduce((a, [, ms]) => a + ms, 0);
  return {
    throughputPerSecond: round(images / elapsed, 1), images, failed,
    saturationMs: summary(latencies), lightLoadMs: summary(light),
    cpuMsPerImage, modelWallMsPerImage: perImage(model), outsideModelMsPerImage: round(serverMs / Math.max(1, images) - modelCpuMs, 2),
    imagesPerModelRun: mean(after.batchImages, before.batchImages), decisionsPerCommit: mean(after.decisionsPerCommit, before.decisionsPerCommit),
  };
}

async function started(child: ChildProcess, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
    child.stdout!.on('data', (d) => { if (String(d).includes('ready')) resolve(); });
  });
}

async function runPeer(modelFolder: string, nextImage: () => Buffer<ArrayBuffer>, modelCpuMs: number): Promise<Measured> {
  const port = await freePort();
  const peer = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'tools', 'bench', 'peer-server.ts'), modelFolder, String(threads), String(port)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await started(peer, 'the peer server');
    const send = async () => {
      const t = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: nextImage() });
      if (res.status !== 200) throw new Error(`the peer answered ${res.status}`);
      await res.json();
      return performance.now() - t;
    };
    const counters = async () => ({ modelMs: ((await (await fetch(`http://127.0.0.1:${port}/model-ms`)).json()) as { modelMs: number }).modelMs });
    return await measure(send, () => cpuByPart({ peer: peer.pid! }), counters, modelCpuMs);
  } finally {
    peer.kill('SIGTERM');
  }
}

/** A Redis and a Mosquitto of the bench's own on free ports (so their CPU is measured), where installed. */
async function startServices(): Promise<{ env: Record<string, string>; stop: () => Promise<void> } | null> {
  const stops: ChildProcess[] = [];
  const env: Record<string, string> = {};
  const launch = async (cmd: string, argv: string[]) => {
    const c = spawn(cmd, argv, { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => { c.once('spawn', resolve); c.once('error', reject); });
    stops.push(c);
  };
  try {
    if (process.env.REDIS_URL) env.REDIS_URL = process.env.REDIS_URL;
    else {
      const port = await freePort();
      await launch('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
      env.REDIS_URL = `redis://127.0.0.1:${port}`;
    }
    if (process.env.MQTT_URL) env.MQTT_URL = process.env.MQTT_URL;
    else {
      const port = await freePort();
      await launch('mosquitto', ['-p', String(port)]).catch(() => {}); // else the embedded broker
      if (stops.length === 2) env.MQTT_URL = `mqtt://127.0.0.1:${port}`;
    }
    if (process.env.DATABASE_URL) env.DATABASE_URL = process.env.DATABASE_URL;
  } catch (err) {
    say(`no Redis to measure the Redis queue with (${(err as Error).message}): set REDIS_URL`);
    for (const c of stops) c.kill();
    return null;
  }
  await sleep(500);
  return { env, stop: async () => { for (const c of stops) c.kill(); } };
}

async function runVisq(variant: string, modelsDir: string, planFile: string | undefined, nextImage: () => Buffer<ArrayBuffer>, modelCpuMs: number, profileDir: string | null): Promise<Measured | null> {
  const services = variant === 'redis' ? await startServices() : { env: {}, stop: async () => {} };
  if (!services) return null;
  // Embedded: no service URL at all, whatever this shell has set.
  const env = { REDIS_URL: '', DATABASE_URL: '', MQTT_URL: '', ...services.env };
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const visq: VisqUnderTest = await startVisq(`bench${variant}`, modelsDir, { env, cameras: concurrency, planFile, nodeArgs });
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
    const send = async (camera: number, serial: string) => {
      const t = performance.now();
      const res = await postInspection(visq, nextImage(), serial, 'BENCH', undefined, camera);
      if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      const at = arrived.get(id) ?? await new Promise<number>((resolve) => waiting.set(id, (a) => { waiting.delete(id); resolve(a); }));
      arrived.delete(id);
      return at - t;
    };
    const counters = async (): Promise<ServerCounters> => {
      const text = await (await fetch(`${visq.base}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      const histogram = (name: string): [number, number] => [value(`${name}_sum`), value(`${name}_count`)];
      return { modelMs: value('visq_inference_duration_seconds_sum') * 1000, batchImages: histogram('visq_inference_batch_images'), decisionsPerCommit: histogram('visq_decisions_per_commit') };
    };
    const result = await measure(send, () => cpuByPart({ visq: visq.pid }), counters, modelCpuMs);
    await mes.endAsync();
    return result;
  } finally {
    await visq.stop();
    await services.stop();
  }
}

async function main() {
  const modelsDir = process.env.VISQ_MODELS_DIR ?? path.join(root, 'models');
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'visq-bench-'));
  try {
    // A model of the registry, or one the bench builds (heavier than the demo's): both in one registry.
    const benchModelsDir = benchModels.includes(args.model!) ? await buildBenchModel(args.model!, scratch, modelsDir) : modelsDir;
    const folder = path.join(benchModelsDir, args.model!);
    const model = await loadModelFolder(folder);
    const goodDir = path.join(root, 'fixtures', 'images', 'machined-surface', 'good');
    const image = await readFile(path.join(goodDir, (await readdir(goodDir)).filter((f) => f.endsWith('.png')).sort()[0]!));
    const tensor = await toInputTensor(image, model.manifest.input, 50_000_000);
    const input = `${model.manifest.input.width}x${model.manifest.input.height}`;

    say(`raw model: ${model.manifest.id}@${model.manifest.version} (${input}), ${threads} thread(s)…`);
    const raw = await rawModel(model.onnxPath, model.manifest.input.name, tensor.data, tensor.dims);
    say('bare HTTP inference server…');
    const nextImage = await cameraImages(image);
    const peer = await runPeer(folder, nextImage, raw.lightLoadMs.p50);
    const visq: Record<string, Measured> = {};
    for (const variant of args.variants!.split(',').filter(Boolean)) {
      say(`visq, ${variant === 'redis' ? 'Redis queue' : 'embedded defaults (PostgreSQL queue)'}…`);
      const profileDir = args.profile ? path.join(root, '.bench-profiles', variant) : null;
      if (profileDir) await rm(profileDir, { recursive: true, force: true });
      const measured = await runVisq(variant, benchModelsDir, benchModels.includes(args.model!) ? benchPlanFile(args.model!, scratch) : undefined, nextImage, raw.lightLoadMs.p50, profileDir);
      if (measured) visq[variant] = measured;
      if (profileDir) say(await summarizeProfiles(profileDir));
    }

    const result = {
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model, node: process.version },
      model: { id: model.manifest.id, version: model.manifest.version, input }, inferenceThreads: threads, cameras: concurrency, seconds,
      raw, peer, visq,
      ratios: Object.fromEntries(Object.entries(visq).map(([variant, m]) => [variant, {
        throughputOverPeer: round(m.throughputPerSecond / peer.throughputPerSecond, 3),
        throughputOverRaw: round(m.throughputPerSecond / raw.throughputPerSecond, 3),
        lightLoadP50OverPeerMs: round(m.lightLoadMs.p50 - peer.lightLoadMs.p50, 1),
      }])),
    };
    if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write(report(result));
    if (Object.values(visq).some((m) => m.failed) || peer.failed) process.exitCode = 1;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function report(r: { machine: { cores: number; cpu?: string; node: string }; model: { id: string; version: string; input: string }; raw: Awaited<ReturnType<typeof rawModel>>; peer: Measured; visq: Record<string, Measured>; ratios: Record<string, { throughputOverPeer: number; throughputOverRaw: number; lightLoadP50OverPeerMs: number }> }): string {
  const rows: [string, Measured | null, number, ReturnType<typeof summary>][] = [
    ['raw model, no I/O', null, r.raw.throughputPerSecond, r.raw.lightLoadMs],
    ['bare HTTP inference server', r.peer, r.peer.throughputPerSecond, r.peer.lightLoadMs],
    ...Object.entries(r.visq).map(([v, m]) => [`visq, ${v === 'redis' ? 'Redis queue' : 'embedded defaults'}`, m, m.throughputPerSecond, m.lightLoadMs] as [string, Measured, number, ReturnType<typeof summary>]),
  ];
  const lines = [
    `visq bench — ${r.machine.cores} cores (${r.machine.cpu}), node ${r.machine.node}, model ${r.model.id}@${r.model.version} (${r.model.input}), ${threads} inference thread(s), ${concurrency} cameras, ${seconds} s`,
    '',
    '| | images/s at saturation | light-load p50 | saturation p50 / p95 | CPU ms per image outside the model |',
    '|---|---|---|---|---|',
    ...rows.map(([name, m, tput, light]) => `| ${name} | ${tput} | ${light.p50} ms | ${m ? `${m.saturationMs.p50} / ${m.saturationMs.p95} ms` : ''} | ${m ? m.outsideModelMsPerImage : ''} |`),
    '',
    ...Object.entries(r.ratios).map(([v, x]) => `visq (${v}) ÷ peer: ${x.throughputOverPeer}; ÷ raw: ${x.throughputOverRaw}; light-load p50 − peer's: ${x.lightLoadP50OverPeerMs} ms`),
    '',
    'CPU ms per image at saturation:',
    ...[['peer', r.peer] as const, ...Object.entries(r.visq).map(([v, m]) => [`visq ${v}`, m] as const)].map(([name, m]) =>
      `  ${name}: ${Object.entries(m.cpuMsPerImage).map(([part, ms]) => `${part} ${ms}`).join(', ')}; time in the model's run ${m.modelWallMsPerImage}` +
      (m.imagesPerModelRun ? `; images per model run ${m.imagesPerModelRun}, decisions per commit ${m.decisionsPerCommit}` : '')),
  ];
  return `${lines.join('\n')}\n`;
}

await main();
