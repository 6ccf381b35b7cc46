/**
 * The input contract of the anomaly models fitted here, and of anomalib ONNX exports with
 * `normalization: null`: RGB, stretched to the model size, float32 NCHW scaled to 0..1, nothing
 * else (no mean/std). Fitting must see exactly the tensors the inspection pipeline will feed
 * (src/inference/preprocess.ts implements the same steps), or scores drift (anomalib #3726).
 */
import sharp from 'sharp';

export interface ImageTensor {
  /** float32 NCHW with N = 1, C = 3 (R, G, B), values 0..1. */
  data: Float32Array;
  width: number;
  height: number;
}

/**
 * Decodes an image (path or encoded bytes) and returns the model input tensor:
 * sharp `.removeAlpha().toColourspace('srgb').resize(W, H, { fit: 'fill' }).raw()`, /255, NCHW.
 */
export async function loadImageTensor(source: string | Buffer, width: number, height: number): Promise<ImageTensor> {
  const { data, info } = await sharp(source)
    .removeAlpha()
    .toColourspace('srgb')
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== width || info.height !== height) {
    throw new Error(`expected ${width}x${height}x3 after preprocessing, got ${info.width}x${info.height}x${info.channels}`);
  }
  return { data: interleavedToPlanar(data, width, height), width, height };
}

/** HWC uint8 RGB → CHW float32 / 255. */
export function interleavedToPlanar(rgb: Uint8Array, width: number, height: number): Float32Array {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    out[i] = (rgb[i * 3] as number) / 255;
    out[plane + i] = (rgb[i * 3 + 1] as number) / 255;
    out[2 * plane + i] = (rgb[i * 3 + 2] as number) / 255;
  }
  return out;
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
