/**
 * Running models with onnxruntime-node during fitting and evaluation.
 */
import * as ort from 'onnxruntime-node';
import { loadImageTensor, type ImageTensor } from './preprocess.js';

/** A CPU session from ONNX bytes or a file path. */
export async function createSession(model: Uint8Array | string): Promise<ort.InferenceSession> {
  // Two calls because `create` is overloaded per argument type and TypeScript will not pick an
  // overload for a union.
  return typeof model === 'string' ? ort.InferenceSession.create(model) : ort.InferenceSession.create(model);
}

/** Stacks single-image NCHW tensors into one batch tensor. */
export function stackBatch(images: readonly ImageTensor[]): ort.Tensor {
  const first = images[0];
  if (!first) throw new RangeError('empty batch');
  const imageLength = first.data.length;
  const data = new Float32Array(imageLength * images.length);
  images.forEach((image, i) => data.set(image.data, i * imageLength));
  return new ort.Tensor('float32', data, [images.length, 3, first.height, first.width]);
}

/**
 * Runs `session` over the images in batches and hands each output tensor, split per image, to the
 * caller. Batching keeps the runtime's per-call overhead low while bounding memory.
 */
export async function runPerImage(
  session: ort.InferenceSession,
  inputName: string,
  images: readonly ImageTensor[],
  outputNames: readonly string[],
  onImage: (index: number, outputs: Record<string, Float32Array>) => void,
  batchSize = 8,
): Promise<void> {
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = images.slice(start, start + batchSize);
    const results = await session.run({ [inputName]: stackBatch(batch) }, [...outputNames]);
    for (let i = 0; i < batch.length; i++) {
      const perImage: Record<string, Float32Array> = {};
      for (const name of outputNames) {
        const tensor = results[name];
        if (!tensor) throw new Error(`the model has no output "${name}"`);
        const all = tensor.data as Float32Array;
        const perImageLength = all.length / batch.length;
        perImage[name] = all.subarray(i * perImageLength, (i + 1) * perImageLength);
      }
      onImage(start + i, perImage);
    }
  }
}

export interface SkippedImage {
  file: string;
  reason: string;
}

/**
 * Loads images as model input tensors. An unreadable or undecodable file is skipped and reported,
 * not fatal: one bad file in a folder of hundreds should not stop a fit.
 */
export async function loadImages(
  files: readonly string[],
  width: number,
  height: number,
  report: (skipped: SkippedImage) => void,
  onFile?: (done: number) => void,
): Promise<{ files: string[]; tensors: ImageTensor[] }> {
  const loaded: { files: string[]; tensors: ImageTensor[] } = { files: [], tensors: [] };
  // Two decodes in flight: sharp decodes off the main thread, so this overlaps file I/O and decoding.
  const results = new Array<ImageTensor | Error>(files.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const index = next++;
      try {
        results[index] = await loadImageTensor(files[index] as string, width, height);
      } catch (error) {
        results[index] = error instanceof Error ? error : new Error(String(error));
      }
      onFile?.(++done);
    }
  };
  await Promise.all([worker(), worker()]);
  files.forEach((file, index) => {
    const result = results[index] as ImageTensor | Error;
    if (result instanceof Error) report({ file, reason: result.message });
    else {
      loaded.tensors.push(result);
      loaded.files.push(file);
    }
  });
  return loaded;
}
