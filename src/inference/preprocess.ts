import sharp from 'sharp';
import type { ModelInput } from './manifest.js';

/** Ultralytics pads letterboxed images with this grey. */
const letterboxGrey = { r: 114, g: 114, b: 114 };

/**
 * Where the original image lies in the model's input, so outputs can be mapped back:
 * an input pixel coordinate `xi` is original coordinate `(xi - padX) / scaleX` (same for y).
 */
export interface InputGeometry {
  /** The original image, in pixels. */
  sourceWidth: number;
  sourceHeight: number;
  /** The model's input, in pixels. */
  inputWidth: number;
  inputHeight: number;
  /** Input pixels per original pixel. */
  scaleX: number;
  scaleY: number;
  /** Padding left and above the resized image, in input pixels (0 unless letterboxed). */
  padX: number;
  padY: number;
  /** The resized image inside the input, in input pixels (the input size unless letterboxed). */
  contentWidth: number;
  contentHeight: number;
}

/** Python's round(): halves to even, as Ultralytics' sizes are computed. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Ultralytics' LetterBox (auto=False, scaleup=True, center=True): scale r = min(h/h0, w/w0), resized
 * size round(w0·r) × round(h0·r), padding split as round(d/2 ∓ 0.1) so an odd pad puts the extra
 * pixel bottom/right. Ultralytics' scale_boxes maps back with the same r for both axes.
 */
export function letterboxGeometry(sourceWidth: number, sourceHeight: number, inputWidth: number, inputHeight: number): InputGeometry {
  const r = Math.min(inputHeight / sourceHeight, inputWidth / sourceWidth);
  const contentWidth = Math.max(1, Math.min(inputWidth, roundHalfEven(sourceWidth * r)));
  const contentHeight = Math.max(1, Math.min(inputHeight, roundHalfEven(sourceHeight * r)));
  const padX = Math.max(0, Math.round((inputWidth - contentWidth) / 2 - 0.1));
  const padY = Math.max(0, Math.round((inputHeight - contentHeight) / 2 - 0.1));
  return { sourceWidth, sourceHeight, inputWidth, inputHeight, scaleX: r, scaleY: r, padX, padY, contentWidth, contentHeight };
}

export function stretchGeometry(sourceWidth: number, sourceHeight: number, inputWidth: number, inputHeight: number): InputGeometry {
  return {
    sourceWidth, sourceHeight, inputWidth, inputHeight,
    scaleX: inputWidth / sourceWidth, scaleY: inputHeight / sourceHeight,
    padX: 0, padY: 0, contentWidth: inputWidth, contentHeight: inputHeight,
  };
}

/**
 * Image bytes → the model's input tensor exactly as its manifest states: resize, channel order,
 * /255, then mean/std only when the manifest asks (anomalib exports normalise inside the graph).
 * Also returns where the original image lies in that input.
 */
export async function toInputTensor(bytes: Buffer, input: ModelInput, maxPixels: number): Promise<{ data: Float32Array; dims: number[]; geometry: InputGeometry }> {
  const { width: w, height: h } = input;
  const channels = input.channels === 'GRAY' ? 1 : 3;
  const options = { limitInputPixels: maxPixels, failOn: 'truncated' } as const;
  const meta = await sharp(bytes, options).metadata();
  if (!meta.width || !meta.height) throw new Error('the image has no dimensions');
  let img = sharp(bytes, options).removeAlpha();
  img = channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  let geometry: InputGeometry;
  if (input.resize === 'letterbox') {
    geometry = letterboxGeometry(meta.width, meta.height, w, h);
    // Resize to the content size and pad explicitly, so the padding is exactly Ultralytics' (sharp's
    // own `contain` rounds its sizes its own way).
    img = img.resize(geometry.contentWidth, geometry.contentHeight, { fit: 'fill' }).extend({
      top: geometry.padY,
      bottom: h - geometry.contentHeight - geometry.padY,
      left: geometry.padX,
      right: w - geometry.contentWidth - geometry.padX,
      background: letterboxGrey,
    });
  } else {
    geometry = stretchGeometry(meta.width, meta.height, w, h);
    img = img.resize(w, h, { fit: 'fill' });
  }
  const { data: raw, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h || info.channels !== channels) {
    throw new Error(`preprocessing produced ${info.width}×${info.height}×${info.channels}, expected ${w}×${h}×${channels}`);
  }

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
  return { data, dims: input.layout === 'NCHW' ? [1, channels, h, w] : [1, h, w, channels], geometry };
}
