import sharp from 'sharp';
import type { ModelInput } from './manifest-fields.js';
import { resizeOpenCvLinear, resizePilBilinear, type RawImage } from './resize.js';

/** Ultralytics pads letterboxed images with this grey (in every channel). */
const letterboxGrey = 114;

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
  /** Padding left and above the resized image, in input pixels (0 when stretched; negative: cropped). */
  padX: number;
  padY: number;
  /** The resized image, in input pixels (the input size when stretched; larger than it when cropped). */
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
 * torchvision's `Resize(shorterSide)` then `CenterCrop((height, width))`: the shorter side becomes
 * `shorterSide` and the longer `int(shorterSide × long / short)` (truncated, as torchvision does);
 * the crop starts at round((resized − crop) / 2) (Python's round). The crop is negative padding.
 */
export function centerCropGeometry(sourceWidth: number, sourceHeight: number, inputWidth: number, inputHeight: number, shorterSide: number): InputGeometry {
  const [resizedWidth, resizedHeight] = sourceWidth <= sourceHeight
    ? [shorterSide, Math.trunc((shorterSide * sourceHeight) / sourceWidth)]
    : [Math.trunc((shorterSide * sourceWidth) / sourceHeight), shorterSide];
  return {
    sourceWidth, sourceHeight, inputWidth, inputHeight,
    scaleX: resizedWidth / sourceWidth, scaleY: resizedHeight / sourceHeight,
    padX: -roundHalfEven((resizedWidth - inputWidth) / 2), padY: -roundHalfEven((resizedHeight - inputHeight) / 2),
    contentWidth: resizedWidth, contentHeight: resizedHeight,
  };
}

/** The decoded, resized 8-bit pixels a model's input is made from, and where the original lies in them. */
export interface PreparedPixels { raw: Buffer; geometry: InputGeometry }

export const channelCount = (input: ModelInput): number => ({ GRAY: 1, RGB: 3, BGR: 3, RGBA: 4 })[input.channels];

/**
 * What the prepared pixels depend on: models with the same size, colour, resize mode and kernel share
 * them (channel order and normalisation are applied afterwards, in `pixelsToTensor`).
 */
export function pixelsKey(input: ModelInput): string {
  const colour = { GRAY: 'gray', RGB: 'srgb', BGR: 'srgb', RGBA: 'rgba' }[input.channels];
  const resize = input.resize === 'center-crop' ? `center-crop${input.shorterSide}` : input.resize;
  return `${input.width}x${input.height}-${colour}-${resize}-${input.interpolation}`;
}

export function geometryFor(input: ModelInput, sourceWidth: number, sourceHeight: number): InputGeometry {
  switch (input.resize) {
    case 'letterbox': return letterboxGeometry(sourceWidth, sourceHeight, input.width, input.height);
    case 'center-crop': return centerCropGeometry(sourceWidth, sourceHeight, input.width, input.height, input.shorterSide!);
    case 'stretch': return stretchGeometry(sourceWidth, sourceHeight, input.width, input.height);
  }
}

export function pixelCount(input: ModelInput): number {
  return input.width * input.height * channelCount(input);
}

/** An image a model cannot use as it is (retrying will not help). */
export class UnusableImageError extends Error {}

/**
 * Decoding options for every image visq reads: the pixel limit before anything is decoded, truncated
 * data refused, and the EXIF orientation applied before anything else (a photo saved sideways is
 * seen upright, as a person and the model's maker see it).
 */
export const decodeOptions = (maxPixels: number) => ({ limitInputPixels: maxPixels, failOn: 'truncated', autoOrient: true }) as const;

/** Decodes the whole image and resizes it as the manifest states, with the kernel of the tool it names. */
export async function preparePixels(bytes: Buffer, input: ModelInput, maxPixels: number): Promise<PreparedPixels> {
  const { width: w, height: h } = input;
  const channels = channelCount(input);
  const meta = await sharp(bytes, decodeOptions(maxPixels)).metadata();
  const sourceWidth = meta.autoOrient?.width ?? meta.width;
  const sourceHeight = meta.autoOrient?.height ?? meta.height;
  if (!sourceWidth || !sourceHeight) throw new UnusableImageError('the image has no dimensions');
  if (channels === 4 && (meta.channels !== 4 || meta.space === 'cmyk')) {
    throw new UnusableImageError(`the model takes 4 channels (RGBA, or RGB and a fourth band), but this ${meta.format} image has ${meta.channels}`);
  }
  let img = sharp(bytes, decodeOptions(maxPixels));
  img = channels === 1 ? img.removeAlpha().greyscale() : channels === 3 ? img.removeAlpha().toColourspace('srgb') : img.toColourspace('srgb');
  const g = geometryFor(input, sourceWidth, sourceHeight);
  let content: RawImage;
  if (input.interpolation === 'bilinear' || input.interpolation === 'bilinear-antialias') {
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    const full = { data, width: info.width, height: info.height, channels: info.channels };
    content = (input.interpolation === 'bilinear' ? resizeOpenCvLinear : resizePilBilinear)(full, g.contentWidth, g.contentHeight);
  } else {
    const { data, info } = await img.resize(g.contentWidth, g.contentHeight, { fit: 'fill', kernel: input.interpolation }).raw().toBuffer({ resolveWithObject: true });
    content = { data, width: info.width, height: info.height, channels: info.channels };
  }
  if (content.width !== g.contentWidth || content.height !== g.contentHeight || content.channels !== channels) {
    throw new Error(`preprocessing produced ${content.width}×${content.height}×${content.channels}, expected ${g.contentWidth}×${g.contentHeight}×${channels}`);
  }
  return { raw: place(content, g, w, h), geometry: g };
}

/**
 * The resized image placed in the model's input: as it is (stretch), padded with Ultralytics' grey
 * (letterbox: odd padding puts the extra pixel bottom/right), or cropped (center-crop: negative padding).
 */
function place(content: RawImage, g: InputGeometry, width: number, height: number): Buffer {
  const c = content.channels;
  if (g.padX === 0 && g.padY === 0 && content.width === width && content.height === height) return Buffer.from(content.data.buffer, content.data.byteOffset, content.data.byteLength);
  const out = Buffer.alloc(width * height * c, letterboxGrey);
  for (let y = 0; y < height; y++) {
    const sy = y - g.padY;
    if (sy < 0 || sy >= content.height) continue;
    const x0 = Math.max(0, g.padX);
    const x1 = Math.min(width, g.padX + content.width);
    if (x1 <= x0) continue;
    const from = (sy * content.width + (x0 - g.padX)) * c;
    out.set(content.data.subarray(from, from + (x1 - x0) * c), (y * width + x0) * c);
  }
  return out;
}

/** Prepared 8-bit pixels → the float tensor: channel order, /255, then mean/std only when the manifest asks. */
export function pixelsToTensor(raw: Uint8Array, input: ModelInput): { data: Float32Array; dims: number[] } {
  const { width: w, height: h } = input;
  const channels = channelCount(input);
  const plane = w * h;
  const data = new Float32Array(channels * plane);
  const order = input.channels === 'BGR' ? [2, 1, 0] : [0, 1, 2, 3];
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
