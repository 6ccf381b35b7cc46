/**
 * Images for fitting and evaluating anomaly models, prepared by the inspection pipeline's own
 * preprocessing (src/inference/preprocess.ts): fitting must see exactly the tensors the pipeline
 * will feed, or scores drift (anomalib #3726).
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { modelInputSchema, type ModelInput } from '../inference/manifest-fields.js';
import { pixelsToTensor, preparePixels } from '../inference/preprocess.js';

export interface ImageTensor {
  /** float32 NCHW with N = 1, C = 3 (R, G, B), values 0..1. */
  data: Float32Array;
  width: number;
  height: number;
}

/** The input of the models fitted here: RGB stretched to width × height, 0..1, no mean/std (their manifests say so). */
export const fittedModelInput = (width: number, height: number): ModelInput =>
  modelInputSchema().parse({ name: 'input', width, height, layout: 'NCHW', channels: 'RGB', resize: 'stretch', normalization: null });

/** Fitting reads images of any size a camera might give (the upload limit applies to uploads, not here). */
const maxPixels = 1e9;

/** Decodes an image (path or encoded bytes) into the model's input tensor, as an inspection would. */
export async function loadImageTensor(source: string | Buffer, width: number, height: number): Promise<ImageTensor> {
  const bytes = typeof source === 'string' ? await readFile(source) : source;
  const input = fittedModelInput(width, height);
  const { raw } = await preparePixels(bytes, input, maxPixels);
  return { data: pixelsToTensor(raw, input).data, width, height };
}

/**
 * Loads a defect mask at the model's resolution as 0/1 labels per pixel (nearest-neighbour, so
 * the labels stay binary; any non-zero gray level counts as defect after thresholding at 128).
 */
export async function loadMaskLabels(path: string, width: number, height: number): Promise<Uint8Array> {
  const { data, info } = await sharp(path)
    .removeAlpha()
    .greyscale()
    .resize(width, height, { fit: 'fill', kernel: 'nearest' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const labels = new Uint8Array(width * height);
  for (let i = 0; i < labels.length; i++) labels[i] = (data[i * info.channels] as number) >= 128 ? 1 : 0;
  return labels;
}
