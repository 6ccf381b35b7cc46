import sharp from 'sharp';

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
  const body = Buffer.concat([Buffer.from('tEXt'), Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]);
  const chunk = Buffer.alloc(body.length + 8);
  chunk.writeUInt32BE(body.length - 4, 0);
  body.copy(chunk, 4);
  chunk.writeUInt32BE(crc32(body), 4 + body.length);
  const iend = png.length - 12;
  const out = Buffer.alloc(png.length + chunk.length);
  png.copy(out, 0, 0, iend);
  chunk.copy(out, iend);
  png.copy(out, iend + chunk.length, iend);
  return out;
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as PNG chunks carry it (ISO 3309). */
function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
