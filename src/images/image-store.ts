import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { NotFoundError } from '../errors.js';

/** Images and overlays, stored by the sha256 of their bytes. */
export interface ImageStore {
  /** Stores the bytes durably and returns their sha256 (hex). Storing the same bytes twice is a no-op. */
  put(bytes: Uint8Array): Promise<string>;
  /** The stored bytes; throws ImageNotFoundError when absent. */
  get(sha256: string): Promise<Buffer>;
}

/** No such image in the store. */
export class ImageNotFoundError extends NotFoundError {}

const sha256Pattern = /^[0-9a-f]{64}$/;

export function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A directory shared by every API and worker process (a local disk, or NFS when scaled across hosts). */
export class FilesystemImageStore implements ImageStore {
  constructor(private readonly root: string) {}

  private pathOf(sha256: string): string {
    if (!sha256Pattern.test(sha256)) throw new ImageNotFoundError('image_not_found', `not a sha256: ${sha256}`);
    return path.join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  async put(bytes: Uint8Array): Promise<string> {
    const sha256 = sha256Of(bytes);
    const target = this.pathOf(sha256);
    if (await exists(target)) return sha256;
    await mkdir(path.dirname(target), { recursive: true });
    // Write aside, flush to disk, then rename: a reader never sees a partial file, and a 202 survives a power cut.
    const temp = `${target}.${randomUUID()}.tmp`;
    const file = await open(temp, 'wx');
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return sha256;
  }

  async get(sha256: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(sha256));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ImageNotFoundError('image_not_found', `image ${sha256} is not in the store`);
      throw err;
    }
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
