import sharp from 'sharp';
import type { ModelInput } from './manifest.js';

/** Ultralytics pads letterboxed images with this grey. */
const letterboxGrey = { r: 114, g: 114, b: 114 };

/**
 * Image bytes → the model's input tensor exactly as its manifest states: resize, channel order,
 * /255, then mean/std only when the manifest asks (anomalib exports normalise inside the graph).
 */
export async function toInputTensor(bytes: Buffer, input: ModelInput, maxPixels: number): Promise<{ data: Float32Array; dims: number[] }> {
  const { width: w, height: h } = input;
  const channels = input.channels === 'GRAY' ? 1 : 3;
  let img = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' }).removeAlpha();
  img = channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  img = input.resize === 'letterbox'
    ? img.resize(w, h, { fit: 'contain', background: letterboxGrey })
    : img.resize(w, h, { fit: 'fill' });
  const raw = await img.raw().toBuffer();

  const plane = w * h;
  const data = new Float32Array(channels * plane);
  const order = input.channels === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const mean = input.normalization?.mean;
  const std = input.normalization?.std;
  for (let c = 0; c < channels; c++) {
    const src = order[c]!;
    const m = mean ? mean[c % mean.length]! : 0;
    const s = std ? std[c % std.length]! : 1;
    for (let p = 0; p < plane; p++) {
      const v = (raw[p * channels + (channels === 1 ? 0 : src)]! / 255 - m) / s;
      if (input.layout === 'NCHW') data[c * plane + p] = v;
      else data[p * channels + c] = v;
    }
  }
  return { data, dims: input.layout === 'NCHW' ? [1, channels, h, w] : [1, h, w, channels] };
}
