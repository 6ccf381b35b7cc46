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

/** The decoded, resized 8-bit pixels a model's input is made from, and where the original lies in them. */
export interface PreparedPixels { raw: Buffer; geometry: InputGeometry }

/**
 * What the prepared pixels depend on: models with the same size, colour and resize mode share them
 * (channel order and normalisation are applied afterwards, in `pixelsToTensor`).
 */
export function pixelsKey(input: ModelInput): string {
  return `${input.width}x${input.height}-${input.channels === 'GRAY' ? 'gray' : 'srgb'}-${input.resize}`;
}

export function geometryFor(input: ModelInput, sourceWidth: number, sourceHeight: number): InputGeometry {
  return input.resize === 'letterbox'
    ? letterboxGeometry(sourceWidth, sourceHeight, input.width, input.height)
    : stretchGeometry(sourceWidth, sourceHeight, input.width, input.height);
}

export function pixelCount(input: ModelInput): number {
  return input.width * input.height * (input.channels === 'GRAY' ? 1 : 3);
}

/** Decodes the whole image and resizes it as the manifest states (letterbox exactly as Ultralytics pads). */
export async function preparePixels(bytes: Buffer, input: ModelInput, maxPixels: number): Promise<PreparedPixels> {
  const { width: w, height: h } = input;
  const channels = input.channels === 'GRAY' ? 1 : 3;
  const options = { limitInputPixels: maxPixels, failOn: 'truncated' } as const;
  const meta = await sharp(bytes, options).metadata();
  if (!meta.width || !meta.height) throw new Error('the image has no dimensions');
  let img = sharp(bytes, options).removeAlpha();
  img = channels === 1 ? img.greyscale() : img.toColourspace('srgb');
  const geometry = geometryFor(input, meta.width, meta.height);
  if (input.resize === 'letterbox') {
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
    img = img.resize(w, h, { fit: 'fill' });
  }
  const { data: raw, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h || info.channels !== channels) {
    throw new Error(`preprocessing produced ${info.width}×${info.height}×${info.channels}, expected ${w}×${h}×${channels}`);
  }
  return { raw, geometry };
}

/** Prepared 8-bit pixels → the float tensor: channel order, /255, then mean/std only when the manifest asks. */
export function pixelsToTensor(raw: Uint8Array, input: ModelInput): { data: Float32Array; dims: number[] } {
  const { width: w, height: h } = input;
  const channels = input.channels === 'GRAY' ? 1 : 3;
  const plane = w * h;
  const data = new Float32Array(channels * plane);
  const order = input.channels === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  const mean = input.normalization?.mean;
  const std = input.normalization?.std;
  for (let c = 0; c < channels; c++) {
    const src = channels === 1 ? 0 : order[c]!;
    // (x / 255 - m) / s as one multiply-add per pixel.
    const scale = 1 / (255 * (std ? std[c % std.length]! : 1));
    const offset = -(mean ? mean[c % mean.length]! : 0) / (std ? std[c % std.length]! : 1);
    if (input.layout === 'NCHW') {
      const base = c * plane;
      for (let p = 0, i = src; p < plane; p++, i += channels) data[base + p] = raw[i]! * scale + offset;
    } else {
      for (let p = 0, i = src; p < plane; p++, i += channels) data[p * channels + c] = raw[i]! * scale + offset;
    }
  }
  return { data, dims: input.layout === 'NCHW' ? [1, channels, h, w] : [1, h, w, channels] };
}

/**
 * Image bytes → the model's input tensor exactly as its manifest states: resize, channel order,
 * /255, then mean/std only when the manifest asks (anomalib exports normalise inside the graph).
 * Also returns where the original image lies in that input.
 */
export async function toInputTensor(bytes: Buffer, input: ModelInput, maxPixels: number): Promise<{ data: Float32Array; dims: number[]; geometry: InputGeometry }> {
  const { raw, geometry } = await preparePixels(bytes, input, maxPixels);
  return { ...pixelsToTensor(raw, input), geometry };
}
