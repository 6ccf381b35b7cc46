import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { checkImage } from '../../src/inference/input-check.js';
import { modelInputSchema } from '../../src/inference/manifest-fields.js';
import { pngBomb } from '../support/images.js';

const limits = (pixels: number) => ({ pixels, side: 20_000, aspect: 20 });

const image = (format: 'png' | 'jpeg' | 'webp' | 'tiff') =>
  sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 120, g: 90, b: 60 } } }).toFormat(format).toBuffer();

describe('checkImage', () => {
  it.each([['png', 'image/png'], ['jpeg', 'image/jpeg'], ['webp', 'image/webp'], ['tiff', 'image/tiff']] as const)('accepts %s by decoding it', async (format, mediaType) => {
    expect(await checkImage(await image(format), limits(1e6))).toMatchObject({ mediaType, width: 64, height: 48 });
  });

  it('the decoding makes the pixels of each distinct model input, once', async () => {
    const input = (width: number, channels: 'RGB' | 'BGR' | 'GRAY') => modelInputSchema().parse({ name: 'input', width, height: 16, channels });
    const r = await checkImage(await image('png'), limits(1e6), [input(32, 'RGB'), input(32, 'BGR'), input(16, 'GRAY')]);
    expect([...r.prepared.keys()].sort()).toEqual(['16x16-gray-stretch-lanczos3', '32x16-srgb-stretch-lanczos3']);
    expect(r.prepared.get('32x16-srgb-stretch-lanczos3')!.length).toBe(32 * 16 * 3);
    expect(r.prepared.get('16x16-gray-stretch-lanczos3')!.length).toBe(16 * 16);
  });

  it('refuses images over the pixel limit before decoding them', async () => {
    await expect(checkImage(pngBomb(30000, 30000), limits(50_000_000))).rejects.toThrow(expect.objectContaining({ name: 'ImageTooLargeError', code: 'image_too_large' }));
  });

  it('refuses truncated data', async () => {
    const jpeg = await sharp({ create: { width: 256, height: 256, channels: 3, background: 'red' } }).jpeg().toBuffer();
    await expect(checkImage(jpeg.subarray(0, jpeg.length / 2), limits(1e6))).rejects.toThrow(expect.objectContaining({ name: 'UnsupportedImageError', code: 'corrupt_image' }));
  });

  it('refuses formats visq does not take', async () => {
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).gif().toBuffer();
    await expect(checkImage(gif, limits(1e6))).rejects.toThrow(expect.objectContaining({ name: 'UnsupportedImageError', code: 'unsupported_image', message: expect.stringContaining('gif') }));
    await expect(checkImage(Buffer.alloc(0), limits(1e6))).rejects.toThrow(expect.objectContaining({ code: 'unsupported_image' }));
  });

  it('refuses an image with fewer channels than a model takes, saying so', async () => {
    const rgba = modelInputSchema().parse({ name: 'input', width: 16, height: 16, channels: 'RGBA' });
    await expect(checkImage(await image('png'), limits(1e6), [rgba])).rejects.toThrow(expect.objectContaining({ code: 'unsuitable_image', message: expect.stringMatching(/takes 4 channels .* this png image has 3/) }));
  });
});
