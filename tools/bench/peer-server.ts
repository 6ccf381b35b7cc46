/**
 * The benchmark's peer: a bare HTTP inference server on the same model, the shape of what a plant
 * would otherwise run (Roboflow Inference, Triton's HTTP endpoint). express + multer, the same sharp
 * decode and preprocessing as visq, onnxruntime-node in as many worker threads as visq's, the
 * model's measures as the JSON answer. No queue, no database, no broker, no image store.
 *
 *   tsx tools/bench/peer-server.ts <model folder> <threads> <port>
 */
import { once } from 'node:events';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import express from 'express';
import multer from 'multer';
import sharp from 'sharp';
import { loadModelFolder } from '../../src/inference/model-registry.js';
import { toInputTensor } from '../../src/inference/preprocess.js';
import { root } from './visq-under-test.js';

const [folder, threadsArg, portArg] = process.argv.slice(2);
const model = await loadModelFolder(path.resolve(folder!));
const threads = Number(threadsArg);
// The same division of labour as visq's inference threads: libvips single-threaded per call.
sharp.concurrency(1);

// One session per thread, run and its outputs turned into measures there (the task's own code, compiled).
const threadCode = `
  const { parentPort, workerData } = require('node:worker_threads');
  const ort = require(${JSON.stringify(path.join(root, 'node_modules', 'onnxruntime-node'))});
  (async () => {
    const { taskOf } = await import(${JSON.stringify(pathToFileURL(path.join(root, 'dist', 'inference', 'manifest.js')).href)});
    const session = await ort.InferenceSession.create(workerData.onnxPath, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
    const task = taskOf(workerData.manifest);
    parentPort.postMessage({ ready: true });
    parentPort.on('message', async ({ data, dims, geometry }) => {
      const t = performance.now();
      const outputs = await session.run({ [workerData.manifest.input.name]: new ort.Tensor('float32', data, dims) });
      const modelMs = performance.now() - t;
      const { measures } = task.run(workerData.manifest, outputs, geometry);
      parentPort.postMessage({ measures: Object.fromEntries(measures), modelMs });
    });
  })();`;

interface Job { tensor: { data: Float32Array; dims: number[]; geometry: unknown }; done: (r: { measures: Record<string, number>; modelMs: number }) => void }
const idle: Worker[] = [];
const waiting: Job[] = [];
const dispatch = (w: Worker, job: Job) => {
  w.once('message', (r) => {
    job.done(r);
    const next = waiting.shift();
    if (next) dispatch(w, next);
    else idle.push(w);
  });
  w.postMessage({ data: job.tensor.data, dims: job.tensor.dims, geometry: job.tensor.geometry }, [job.tensor.data.buffer as ArrayBuffer]);
};
for (let i = 0; i < threads; i++) {
  const w = new Worker(threadCode, { eval: true, workerData: { onnxPath: model.onnxPath, manifest: model.manifest } });
  await once(w, 'message');
  idle.push(w);
}
const infer = (tensor: Job['tensor']) => new Promise<{ measures: Record<string, number>; modelMs: number }>((done) => {
  const w = idle.pop();
  if (w) dispatch(w, { tensor, done });
  else waiting.push({ tensor, done });
});

let modelMs = 0;
const app = express();
const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 25 * 1024 * 1024, files: 1 } });
// Multipart (multer) or a raw image body, as visq takes them.
app.post('/infer', upload.single('image'), express.raw({ type: 'image/*', limit: '25mb' }), async (req, res) => {
  const bytes = req.file?.buffer ?? (Buffer.isBuffer(req.body) ? req.body : null);
  if (!bytes) { res.status(400).json({ error: 'no image' }); return; }
  try {
    const tensor = await toInputTensor(bytes, model.manifest.input, 50_000_000);
    const result = await infer(tensor);
    modelMs += result.modelMs;
    res.json({ model: model.manifest.id, measures: result.measures });
  } catch (err) {
    res.status(422).json({ error: (err as Error).message });
  }
});
// What the bench reads to split the peer's CPU into the model's and the rest.
app.get('/model-ms', (_req, res) => { res.json({ modelMs }); });
const server = app.listen(Number(portArg), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => { server.close(); process.exit(0); });
