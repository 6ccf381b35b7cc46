import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { InsufficientStorageError, NotFoundError } from '../errors.js';
import { storageRetryAfterSeconds } from './storage-guard.js';

/** Images and overlays, stored by the sha256 of their bytes. */
export interface ImageStore {
  /** Stores the bytes durably and returns their sha256 (hex). Storing the same bytes twice is a no-op. */
  put(bytes: Uint8Array): Promise<string>;
  /** The stored bytes; throws ImageNotFoundError when absent. */
  get(sha256: string): Promise<Buffer>;
  /** Unlinks the file; one already gone is fine (a pruner killed after its unlink retries it). */
  remove(sha256: string): Promise<void>;
  /** The file's size in bytes, or null when it is not there. */
  sizeOf(sha256: string): Promise<number | null>;
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
    await mkdir(path.dirname(target), { recursive: true }).catch(refuseWhenFull);
    // Write aside, flush to disk, then rename: a reader never sees a partial file, and a 202 survives a power cut.
    await writeDurably(target, bytes, true);
    return sha256;
  }

  async remove(sha256: string): Promise<void> {
    await unlink(this.pathOf(sha256)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
  }

  async sizeOf(sha256: string): Promise<number | null> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
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

/**
 * Writes `bytes` to a temporary file beside `target` and renames it into place (after an fsync when
 * `durable`): whatever fails — a full disk above all — leaves neither a partial file nor the
 * temporary one behind.
 */
export async function writeDurably(target: string, bytes: Uint8Array, durable: boolean): Promise<void> {
  const temp = `${target}.${randomUUID()}.tmp`;
  try {
    const file = await open(temp, 'wx');
    try {
      await file.writeFile(bytes);
      if (durable) await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    refuseWhenFull(err);
  }
}

/** A full volume (or a file-system quota) is the caller's to act on: 507 with Retry-After. Anything else is rethrown. */
export function refuseWhenFull(err: unknown): never {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') throw new InsufficientStorageError('the volume of the image store is full; retry when the pruner has made room', storageRetryAfterSeconds);
  throw err;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The size of the volume holding `dir`, and the space on it that this process may still use. */
export interface Volume { totalBytes: number; freeBytes: number }

export async function volumeOf(dir: string): Promise<Volume> {
  // A store not created yet will be on the volume of its nearest existing parent.
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const s = await statfs(d);
      return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || d === path.dirname(d)) throw err;
    }
  }
}
