import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FilesystemImageStore, refuseWhenFull, sha256Of, writeDurably } from '../../src/images/image-store.js';
import { PreparedInputs } from '../../src/inference/prepared-inputs.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'visq-store-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const tree = async (root: string): Promise<string[]> => (await readdir(root, { recursive: true, withFileTypes: true }))
  .filter((e) => e.isFile()).map((e) => path.relative(root, path.join(e.parentPath, e.name))).sort();

describe('the image store on a file system', () => {
  it('stores by sha256, tells sizes, and removes (a file already gone is fine)', async () => {
    const store = new FilesystemImageStore(path.join(dir, 'images'));
    const bytes = Buffer.from('part image bytes');
    const sha = await store.put(bytes);
    expect(sha).toBe(sha256Of(bytes));
    expect(await store.sizeOf(sha)).toBe(bytes.length);
    expect((await store.get(sha)).equals(bytes)).toBe(true);
    await store.remove(sha);
    await store.remove(sha);
    expect(await store.sizeOf(sha)).toBeNull();
    await expect(store.get(sha)).rejects.toMatchObject({ code: 'image_not_found' });
  });

  it('a write that fails leaves neither the file nor its temporary file', async () => {
    const target = path.join(dir, 'taken');
    // A directory in the way: the rename into place fails after the bytes were written aside.
    await mkdir(path.join(target, 'inside'), { recursive: true });
    await expect(writeDurably(target, Buffer.from('x'), true)).rejects.toThrow();
    expect(await tree(dir)).not.toContainEqual(expect.stringMatching(/\.tmp$/));
  });

  it('a full volume or file-system quota is an InsufficientStorageError (507); other errors are passed on', () => {
    for (const code of ['ENOSPC', 'EDQUOT']) {
      expect(() => refuseWhenFull(Object.assign(new Error('no space left on device'), { code }))).toThrow(expect.objectContaining({ code: 'insufficient_storage', retryAfterSeconds: 10 }));
    }
    expect(() => refuseWhenFull(Object.assign(new Error('permission denied'), { code: 'EACCES' }))).toThrow('permission denied');
  });

  it('prepared pixels are removed by their keys; a sweep removes temporary files, and with `all` anything older', async () => {
    const root = path.join(dir, 'prepared');
    const prepared = new PreparedInputs(root);
    const sha = 'ab'.repeat(32);
    await prepared.put(sha, '16x16-rgb', new Uint8Array(768));
    await prepared.put(sha, '8x8-gray', new Uint8Array(64));
    expect(await prepared.get(sha, '16x16-rgb', 768)).not.toBeNull();
    await prepared.remove(sha, ['16x16-rgb']);
    expect(await prepared.get(sha, '16x16-rgb', 768)).toBeNull();
    expect(await tree(root)).toEqual([`ab/${sha}.8x8-gray.raw`]);
    await writeDurably(path.join(root, 'ab', 'left.tmp'), Buffer.from('killed mid-write'), false);
    const future = new Date(Date.now() + 60_000);
    expect(await prepared.sweep(future, false)).toBe(1);
    expect(await tree(root)).toEqual([`ab/${sha}.8x8-gray.raw`]);
    expect(await prepared.sweep(new Date(Date.now() - 60_000), true)).toBe(0);
    expect(await prepared.sweep(future, true)).toBe(1);
    expect(await tree(root)).toEqual([]);
  });
});
