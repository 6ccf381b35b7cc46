import * as ort from 'onnxruntime-node';
import { measureSpecs, taskOf, type Manifest } from './manifest.js';
import { pixelCount, pixelsToTensor, stretchGeometry } from './preprocess.js';

export interface DryRun {
  /** The run's time, including the session's first-run set-up. */
  ms: number;
  /** Each output's shape as the run returned it. */
  outputs: Record<string, number[]>;
  measures: Record<string, number>;
  /** Values outside what the manifest promises, on a mid-grey image (a hint, not proof, of a wrong output). */
  warnings: string[];
}

/** A measure outside the values its model promises, in words; null when it is within them (or not finite: the decision says so). */
export function outOfRange(spec: { name: string; min: number; max: number | null }, value: number): string | null {
  if (!Number.isFinite(value)) return null;
  // Float outputs may overshoot a bound by rounding (a probability of 1.0000001).
  const slack = 1e-6 * Math.max(1, Math.abs(spec.max ?? spec.min));
  if (value >= spec.min - slack && (spec.max === null || value <= spec.max + slack)) return null;
  return `${spec.name} = ${value} is outside [${spec.min}, ${spec.max ?? '∞'}], the range this model promises`;
}

/**
 * Runs the model once on a generated mid-grey image and checks that its task can read what comes
 * out: shapes the graph leaves open are only known from a run, and the first run of a session also
 * sets it up (so it warms the model for the first real part). Throws with what is wrong.
 */
export async function dryRun(session: ort.InferenceSession, manifest: Manifest): Promise<DryRun> {
  const task = taskOf(manifest);
  const { input } = manifest;
  const tensor = pixelsToTensor(new Uint8Array(pixelCount(input)).fill(128), input);
  const t0 = performance.now();
  const outputs = await session.run({ [input.name]: new ort.Tensor('float32', tensor.data, tensor.dims) });
  const ms = performance.now() - t0;
  const shapes: Record<string, number[]> = {};
  for (const name of task.outputNames(manifest)) {
    const out = outputs[name];
    if (!out) throw new Error(`a run on a generated image returned no output "${name}"`);
    shapes[name] = [...out.dims];
    const problem = task.checkOutput(manifest, name, out.dims);
    if (problem) throw new Error(`on a generated image, ${problem}`);
  }
  const result = task.run(manifest, outputs, stretchGeometry(input.width, input.height, input.width, input.height));
  const measures = Object.fromEntries(result.measures);
  const warnings = measureSpecs(manifest).flatMap((spec) => {
    const value = result.measures.get(spec.name);
    if (value === undefined) throw new Error(`the task gave no "${spec.name}" on a generated image`);
    const problem = outOfRange(spec, value);
    return problem ? [`on a mid-grey image, ${problem}`] : [];
  });
  return { ms, outputs: shapes, measures, warnings };
}

/** Inputs of one shape, one after the other: a batch's input tensor data. */
export function stackInputs(inputs: readonly Float32Array[]): Float32Array {
  if (inputs.length === 1) return inputs[0]!;
  const stacked = new Float32Array(inputs.reduce((a, d) => a + d.length, 0));
  inputs.forEach((d, i) => stacked.set(d, i * d.length));
  return stacked;
}

/** A run's outputs for item `i` of a batch, as the outputs of a run on that item alone ([1, …]). */
export function itemOutputs(outputs: ort.InferenceSession.OnnxValueMapType, names: readonly string[], i: number): Record<string, ort.Tensor> {
  return Object.fromEntries(names.map((name) => {
    const t = outputs[name] as ort.Tensor;
    const size = t.dims.slice(1).reduce((a, b) => a * b, 1);
    return [name, new ort.Tensor(t.type as 'float32', (t.data as Float32Array).subarray(i * size, (i + 1) * size), [1, ...t.dims.slice(1)])];
  }));
}

/**
 * Whether the model takes several images in one run: its input's first dimension is open, and a
 * run on two generated images gives each exactly (bit for bit) what a run on it alone gives, so
 * batching never changes a part's result.
 */
export async function acceptsBatches(session: ort.InferenceSession, manifest: Manifest): Promise<boolean> {
  const metadata = (session as unknown as { inputMetadata?: { name: string; shape?: readonly (number | string)[] }[] }).inputMetadata;
  const first = metadata?.find((m) => m.name === manifest.input.name)?.shape?.[0];
  if (first === undefined || (typeof first === 'number' && first > 0)) return false;
  const { input } = manifest;
  const n = pixelCount(input);
  const grey = pixelsToTensor(new Uint8Array(n).fill(128), input);
  const ramp = pixelsToTensor(Uint8Array.from({ length: n }, (_, i) => (i * 7) % 256), input);
  const names = taskOf(manifest).outputNames(manifest);
  const single = [await session.run({ [input.name]: new ort.Tensor('float32', grey.data, grey.dims) }), await session.run({ [input.name]: new ort.Tensor('float32', ramp.data, ramp.dims) })];
  const stacked = stackInputs([grey.data, ramp.data]);
  let both: ort.InferenceSession.OnnxValueMapType;
  try {
    both = await session.run({ [input.name]: new ort.Tensor('float32', stacked, [2, ...grey.dims.slice(1)]) });
  } catch {
    return false;
  }
  return names.every((name) => (both[name] as ort.Tensor).dims[0] === 2 && [0, 1].every((i) => {
    const item = itemOutputs(both, [name], i)[name]!.data as Float32Array;
    const alone = (single[i]![name] as ort.Tensor).data as Float32Array;
    return item.length === alone.length && item.every((v, k) => Object.is(v, alone[k]));
  }));
}
