import sharp from 'sharp';
import { pngChunk } from '../png-chunks.js';

/**
 * What the bench's cameras send: never the same bytes twice, as on a line where each part is
 * photographed anew. Posting one PNG over and over would measure something no plant does: every
 * upload and decision updating the same row of the image store's index, one after the other.
 * Each image is one of `pixelVariants` copies of the original with a small patch of pixels nudged
 * (so scores and overlays differ as well), made unique by a PNG text chunk with a counter (which
 * decoders ignore, so the pixels and the model's work stay those of the variant).
 */
export async function cameraImages(png: Buffer, pixelVariants = 64): Promise<() => Buffer<ArrayBuffer>> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const variants: Buffer[] = [];
  for (let v = 0; v < pixelVariants; v++) {
    const pixels = Buffer.from(data);
    const x0 = (v * 37) % Math.max(1, info.width - 8);
    const y0 = (v * 53) % Math.max(1, info.height - 8);
    for (let y = y0; y < Math.min(info.height, y0 + 8); y++) {
      for (let x = x0; x < Math.min(info.width, x0 + 8); x++) {
        const i = (y * info.width + x) * info.channels;
        for (let c = 0; c < Math.min(3, info.channels); c++) pixels[i + c] = Math.min(255, pixels[i + c]! + 1 + (v % 5));
      }
    }
    variants.push(await sharp(pixels, { raw: { width: info.width, height: info.height, channels: info.channels } }).png().toBuffer());
  }
  let n = 0;
  return () => {
    const base = variants[n % variants.length]!;
    return withTextChunk(base, 'bench-image', String(n++));
  };
}

/** The PNG with a tEXt chunk inserted before its IEND chunk (the last 12 bytes). */
function withTextChunk(png: Buffer, keyword: string, text: string): Buffer<ArrayBuffer> {
  const chunk = pngChunk('tEXt', Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]));
  const iend = png.length - 12;
  return Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)]) as Buffer<ArrayBuffer>;
}
