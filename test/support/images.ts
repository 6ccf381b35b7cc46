import { deflateSync } from 'node:zlib';
import { pngChunk as chunk } from '../../tools/png-chunks.js';

/**
 * A valid-looking grey PNG of width×height whose pixel data is a few bytes of deflate:
 * the shape of a decompression bomb (30000×30000 is 900 MB once decoded).
 */
export function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const firstRows = deflateSync(Buffer.alloc((width + 1) * 4));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', firstRows), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A PNG whose header claims width×height over a few bytes of data: what a decoder reads first, so
 * a check that refuses it from the header never touches the rest.
 */
export function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 0;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

export const gif1x1 = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
export const bmpHeader = Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]);

/**
 * The same PNG with a tEXt comment before IEND: other bytes (another sha256), the same pixels.
 * Makes distinct uploads of a fixture image that the models judge the same.
 */
export function withPngComment(png: Buffer, comment: string): Buffer {
  const iend = png.length - 12;
  return Buffer.concat([png.subarray(0, iend), chunk('tEXt', Buffer.from(`Comment\0${comment}`, 'latin1')), png.subarray(iend)]);
}
