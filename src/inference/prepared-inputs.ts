import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeDurably } from '../images/image-store.js';

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
    await writeDurably(target, raw, false);
  }

  /** Removes an image's prepared pixels (those of `pixelsKeys`); already gone is fine. */
  async remove(imageSha256: string, pixelsKeys: readonly string[]): Promise<void> {
    for (const key of pixelsKeys) await rm(this.pathOf(imageSha256, key), { force: true });
  }

  /**
   * Removes files last written before `before` that the database may not know of: temporary files
   * of a process killed while writing and, with `all`, pixels prepared before visq tracked them.
   * Returns how many.
   */
  async sweep(before: Date, all: boolean): Promise<number> {
    let removed = 0;
    const dirs = await readdir(this.root).catch(() => [] as string[]);
    for (const dir of dirs) {
      if (!/^[0-9a-f]{2}$/.test(dir)) continue;
      for (const name of await readdir(path.join(this.root, dir)).catch(() => [] as string[])) {
        const file = path.join(this.root, dir, name);
        const info = await stat(file).catch(() => null);
        if (info?.isFile() && info.mtime < before && (all || name.endsWith('.tmp'))) {
          await rm(file, { force: true });
          removed++;
        }
      }
    }
    return removed;
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
