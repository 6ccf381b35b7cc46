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
