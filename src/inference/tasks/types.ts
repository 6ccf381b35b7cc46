import type { z } from 'zod';
import { listFew } from '../../text.js';
import type { MeasureSpec, ModelInput } from '../manifest-fields.js';
import type { InputGeometry } from '../preprocess.js';

/**
 * What every task module works with: a model's output tensors in, measures and overlays out.
 * Task modules are pure (no I/O); the inference thread encodes and stores the overlays.
 */

/** An output tensor as onnxruntime returns it (ort.Tensor fits), or a hand-made one in tests. */
export interface OutputTensor {
  readonly dims: readonly number[];
  readonly data: unknown;
  readonly type?: string;
}

export type TaskOutputs = Readonly<Record<string, OutputTensor | undefined>>;

/** An 8-bit single-channel image at the model's output resolution, stored as a PNG. */
export interface GrayOverlay { kind: string; format: 'png'; width: number; height: number; pixels: Uint8Array }
/** A small JSON document (stored as its UTF-8 bytes). */
export interface JsonOverlay { kind: string; format: 'json'; document: unknown }
export type TaskOverlay = GrayOverlay | JsonOverlay;

export interface TaskOutput { measures: Map<string, number>; overlays: TaskOverlay[] }

/** The named output, or an error naming it: a graph checked at load always has it. */
export function outputTensor(outputs: TaskOutputs, name: string): OutputTensor {
  const t = outputs[name];
  if (!t) throw new Error(`the model returned no output "${name}"`);
  return t;
}

export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** A tensor's values as numbers (float32/64, integer and int64 tensors; float16 decoded). */
export function tensorValues(t: OutputTensor, name: string): ArrayLike<number> {
  const d = t.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Float64Array.from(d, (v) => Number(v));
  if (t.type === 'float16' && d instanceof Uint16Array) return Float64Array.from(d, halfToFloat);
  if (ArrayBuffer.isView(d) && !(d instanceof DataView)) return d as unknown as ArrayLike<number>;
  if (Array.isArray(d) && d.every((v) => typeof v === 'number')) return d as number[];
  throw new Error(`output "${name}" is not a numeric tensor (${t.type ?? typeof d})`);
}

export const shapeText = (dims: readonly (number | string)[]): string => `[${dims.join(', ')}]`;

/**
 * One kind of model (CONTRACT.md "Model registry": adding a model of a supported task is adding a
 * folder). A task is one module under tasks/ and one line in tasks/index.ts: its manifest schema,
 * the measures it yields, the outputs it reads and the shapes it accepts, and how outputs become
 * measures and overlays.
 */
export interface ModelTask<M extends TaskManifest = TaskManifest> {
  readonly name: M['task'];
  /** The whole manifest of this task (strict: an unknown key is an error), `measures` filled in. */
  readonly schema: z.ZodType<M>;
  /** What a model with this manifest yields, in a stable order, with the values it promises. */
  measures(manifest: M): MeasureSpec[];
  /** The output names the task reads. */
  outputNames(manifest: M): string[];
  /**
   * What is wrong with output `name` having `shape` (from the graph, where symbolic dimensions are
   * strings, or from a run), or null when the task can use it.
   */
  checkOutput(manifest: M, name: string, shape: readonly (number | string)[]): string | null;
  /** A model's output tensors (+ where the original image lies in its input) → measures and overlays. */
  run(manifest: M, outputs: TaskOutputs, geometry: InputGeometry): TaskOutput;
}

/** What every task's manifest has (manifest-fields.ts `commonFields`, after defaults). */
export interface TaskManifest {
  task: string;
  id: string;
  version: string;
  file: string;
  sha256: string;
  measures: string[];
  input: ModelInput;
  card: { description: string; data: string; method: string; reproduce: string; metrics: Record<string, unknown>; license: string };
}

/** `3 labels (scratch, dent, crack)`, long lists cut short. */
export const labelList = (labels: readonly string[]) => `${plural(labels.length, 'label')} (${listFew(labels)})`;

export const plural = (n: number, word: string) => `${n} ${n === 1 ? word : word.endsWith('s') ? `${word}es` : `${word}s`}`;

/** Whether a graph dimension is known and differs from `want`. */
export const differs = (dim: number | string | undefined, want: number) => typeof dim === 'number' && dim !== want;
