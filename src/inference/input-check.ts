import sharp, { type Metadata } from 'sharp';
import { ImageTooLargeError, UnsupportedImageError } from '../errors.js';
import type { ModelInput } from './manifest.js';
import { decodeOptions, pixelsKey, preparePixels, UnusableImageError } from './preprocess.js';

/** Formats a camera may send (CONTRACT.md), by what the decoder finds, not by what the header claims. */
const supported = new Map([
  ['jpeg', 'image/jpeg'],
  ['png', 'image/png'],
  ['tiff', 'image/tiff'],
  ['webp', 'image/webp'],
]);

/**
 * What one image may be: decoded pixels, pixels on its longer side, and how elongated (longer side ÷
 * shorter side). The pixel limit alone is not enough: a 49,000,000 × 1 PNG of 143 kB stays under 50 MP
 * yet takes a gigabyte to decode, and its 1 × 49,000,000 twin seconds of CPU for its rows.
 */
export interface ImageLimits { pixels: number; side: number; aspect: number }

/** A readable image: `width` and `height` upright, after its EXIF orientation (`exifOrientation`, null when none) is applied. */
export interface CheckedImage { mediaType: string; width: number; height: number; exifOrientation: number | null; prepared: Map<string, Buffer> }

/**
 * Decodes the whole image once so that corrupt, truncated or unsupported data is refused at the door,
 * and refuses images over the pixel limit before decoding them (decompression bombs). The decoding
 * makes the pixels of each given model input, so that workers need not decode the image again.
 * Every limit is checked from the header, before anything is decoded. Throws UnsupportedImageError
 * or ImageTooLargeError.
 */
export async function checkImage(bytes: Buffer, limits: ImageLimits, inputs: readonly ModelInput[] = []): Promise<CheckedImage> {
  const maxPixels = limits.pixels;
  if (bytes.length === 0) throw new UnsupportedImageError('unsupported_image', 'the image is empty (0 bytes)');
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new UnsupportedImageError('unsupported_image', 'not a readable image (expected JPEG, PNG, TIFF or WebP)');
  }
  const mediaType = meta.format ? supported.get(meta.format) : undefined;
  if (!mediaType) throw new UnsupportedImageError('unsupported_image', `unsupported image format "${meta.format}" (expected JPEG, PNG, TIFF or WebP)`);
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw new UnsupportedImageError('unsupported_image', 'the image has no dimensions');
  if (width * height > maxPixels) {
    throw new ImageTooLargeError('image_too_large', `the image is ${width}×${height} = ${width * height} pixels; the limit is ${maxPixels}`);
  }
  if (Math.max(width, height) > limits.side) {
    throw new ImageTooLargeError('image_too_large', `the image is ${width}×${height} pixels; the limit is ${limits.side} pixels on a side`);
  }
  if (Math.max(width, height) / Math.min(width, height) > limits.aspect) {
    throw new ImageTooLargeError('image_too_elongated', `the image is ${width}×${height} pixels, ${Math.round(Math.max(width, height) / Math.min(width, height))} times longer than wide; the limit is ${limits.aspect}:1`);
  }
  const prepared = new Map<string, Buffer>();
  try {
    for (const input of inputs) {
      const key = pixelsKey(input);
      if (!prepared.has(key)) prepared.set(key, (await preparePixels(bytes, input, maxPixels)).raw);
    }
    if (prepared.size === 0) {
      // Reading every pixel into a tiny thumbnail finds truncation and corruption without holding the
      // whole decoded image in memory (shrink-on-load off, so nothing is skipped).
      await sharp(bytes, { ...decodeOptions(maxPixels), sequentialRead: true })
        .resize(8, 8, { fit: 'fill', fastShrinkOnLoad: false })
        .raw()
        .toBuffer();
    }
  } catch (err) {
    if (err instanceof UnusableImageError) throw new UnsupportedImageError('unsuitable_image', err.message);
    throw new UnsupportedImageError('corrupt_image', `the ${meta.format} image cannot be decoded: ${(err as Error).message}`);
  }
  const exifOrientation = meta.orientation && meta.orientation >= 1 && meta.orientation <= 8 ? meta.orientation : null;
  return { mediaType, width, height, exifOrientation, prepared };
}
