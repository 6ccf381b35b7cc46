import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Model-input pixels the API made while checking an upload (it has to decode the image anyway),
 * kept so that workers need not decode the same image again. Derived data: a missing or damaged
 * entry only means the worker decodes the original itself, so nothing here is fsynced.
 */
export class PreparedInputs {
  constructor(private readonly root: string) {}

  private pathOf(imageSha256: string, pixelsKey: string): string {
    if (!/^[0-9a-f]{64}$/.test(imageSha256) || !/^[\w.-]+$/.test(pixelsKey)) throw new Error(`bad prepared-input key ${imageSha256}/${pixelsKey}`);
    return path.join(this.root, imageSha256.slice(0, 2), `${imageSha256}.${pixelsKey}.raw`);
  }

  async put(imageSha256: string, pixelsKey: string, raw: Uint8Array): Promise<void> {
    const target = this.pathOf(imageSha256, pixelsKey);
    await mkdir(path.dirname(target), { recursive: true });
    const temp = `${target}.${randomUUID()}.tmp`;
    await writeFile(temp, raw);
    await rename(temp, target).catch(async (err) => { await rm(temp, { force: true }); throw err; });
  }

  /** The pixels, or null when absent or not of the expected size. */
  async get(imageSha256: string, pixelsKey: string, expectedBytes: number): Promise<Buffer | null> {
    try {
      const raw = await readFile(this.pathOf(imageSha256, pixelsKey));
      return raw.length === expectedBytes ? raw : null;
    } catch {
      return null;
    }
  }
}
