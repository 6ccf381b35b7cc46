import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { main as generateCli } from '../../tools/fixtures/generate.js';
import { PART_TYPES, encodeRgbPng, generatePart, hashSeed, mulberry32, writeDataset, type PartType } from '../../tools/fixtures/index.js';

const SIZE = 96; // small images keep the suite fast; defect sizes follow the image size
const partTypes = Object.keys(PART_TYPES) as PartType[];
const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'visq-fixtures-test-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

function countNonZero(buffer: Buffer): number {
  let n = 0;
  for (const byte of buffer) if (byte) n++;
  return n;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

describe('seeded randomness', () => {
  it('mulberry32 repeats its sequence for a seed and differs across seeds', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const first = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(first);
    expect([c(), c(), c()]).not.toEqual(first);
    for (const value of first) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
    }
  });

  it('hashSeed is stable and sensitive to every part', () => {
    expect(hashSeed('a', 1)).toBe(hashSeed('a', 1));
    expect(hashSeed('a', 1)).not.toBe(hashSeed('a', 2));
    expect(hashSeed('a', 1)).not.toBe(hashSeed('a1'));
  });
});

describe('generatePart', () => {
  it.each(partTypes)('%s: the same seed gives identical bytes, another seed different ones', (partType) => {
    const defect = PART_TYPES[partType].defects[0] ?? null;
    const one = generatePart({ partType, defect, seed: 11, width: SIZE, height: SIZE });
    const again = generatePart({ partType, defect, seed: 11, width: SIZE, height: SIZE });
    const other = generatePart({ partType, defect, seed: 12, width: SIZE, height: SIZE });
    expect(again.rgb.equals(one.rgb)).toBe(true);
    expect(again.mask?.equals(one.mask as Buffer)).toBe(true);
    expect(other.rgb.equals(one.rgb)).toBe(false);
    expect(one.rgb.length).toBe(SIZE * SIZE * 3);
  });

  it.each(partTypes)('%s: a good part has no mask', (partType) => {
    const good = generatePart({ partType, defect: null, seed: 5, width: SIZE, height: SIZE });
    expect(good.mask).toBeNull();
    expect(good.partNumber).toBe(PART_TYPES[partType].partNumber);
  });

  const cases = partTypes.flatMap((partType) => PART_TYPES[partType].defects.map((defect) => [partType, defect] as const));
  it.each(cases)('%s / %s: the mask is non-empty, small, and marks where the image changed', (partType, defect) => {
    for (const seed of [1, 2, 3]) {
      const bad = generatePart({ partType, defect, seed, width: SIZE, height: SIZE });
      // Same seed without the defect: the same part (separate random streams), so the difference
      // between the two images is the defect alone.
      const good = generatePart({ partType, defect: null, seed, width: SIZE, height: SIZE });
      const mask = bad.mask as Buffer;
      expect(mask).not.toBeNull();
      expect(mask.length).toBe(SIZE * SIZE);
      const area = countNonZero(mask);
      expect(area).toBeGreaterThan(0);
      expect(area / (SIZE * SIZE)).toBeLessThan(0.05);

      // Changed pixels lie on the mask or within 3 px of it (soft edges, lens blur).
      let changedOutside = 0;
      let changedTotal = 0;
      for (let y = 0; y < SIZE; y++) {
        for (let x = 0; x < SIZE; x++) {
          const i = y * SIZE + x;
          const change = Math.max(...[0, 1, 2].map((c) => Math.abs((bad.rgb[i * 3 + c] as number) - (good.rgb[i * 3 + c] as number))));
          if (change < 8) continue;
          changedTotal++;
          let nearMask = false;
          for (let dy = -3; dy <= 3 && !nearMask; dy++) {
            for (let dx = -3; dx <= 3 && !nearMask; dx++) {
              const yy = y + dy;
              const xx = x + dx;
              if (yy >= 0 && yy < SIZE && xx >= 0 && xx < SIZE && mask[yy * SIZE + xx]) nearMask = true;
            }
          }
          if (!nearMask) changedOutside++;
        }
      }
      expect(changedTotal).toBeGreaterThan(0); // visible
      expect(changedOutside).toBe(0);
    }
  });

  it('rejects a defect the part type does not have, and bad sizes or seeds', () => {
    expect(() => generatePart({ partType: 'machined-surface', defect: 'missing_feature', seed: 1 })).toThrow(/not defined/);
    expect(() => generatePart({ partType: 'bracket', defect: null, seed: -1 })).toThrow(/seed/);
    expect(() => generatePart({ partType: 'bracket', defect: null, seed: 1, width: 8 })).toThrow(/width/);
  });

  it('defaults to 256×256', () => {
    const part = generatePart({ partType: 'machined-surface', defect: null, seed: 1 });
    expect([part.width, part.height, part.rgb.length]).toEqual([256, 256, 256 * 256 * 3]);
  });
});

describe('PNG output', () => {
  it('encodes the same pixels to the same bytes', async () => {
    const part = generatePart({ partType: 'bracket', defect: null, seed: 3, width: SIZE, height: SIZE });
    const a = await encodeRgbPng(part.rgb, SIZE, SIZE);
    const b = await encodeRgbPng(Buffer.from(part.rgb), SIZE, SIZE);
    expect(a.equals(b)).toBe(true);
    const { data, info } = await sharp(a).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([SIZE, SIZE, 3]);
    expect(data.equals(part.rgb)).toBe(true); // lossless
  });

  it('writeDataset writes the good/bad/masks layout, byte-identical for the same seed', async () => {
    const options = { partType: 'bracket' as const, good: 2, badPerDefect: 1, seed: 99, width: SIZE, height: SIZE };
    const first = await tempDir();
    const second = await tempDir();
    const files = await writeDataset({ ...options, outDir: first });
    await writeDataset({ ...options, outDir: second });

    const names = await listFiles(first);
    expect(names).toEqual(await listFiles(second));
    expect(names).toContain(join('good', 'good_000.png'));
    for (const defect of PART_TYPES.bracket.defects) {
      expect(names).toContain(join('bad', defect, `${defect}_000.png`));
      expect(names).toContain(join('masks', defect, `${defect}_000.png`)); // same name as its image
    }
    expect(names.filter((n) => n.startsWith('masks')).length).toBe(PART_TYPES.bracket.defects.length);
    for (const name of names) expect((await readFile(join(first, name))).equals(await readFile(join(second, name)))).toBe(true);
    expect(files.good.length).toBe(2);
    expect(files.masks.size).toBe(PART_TYPES.bracket.defects.length);

    const other = await tempDir();
    await writeDataset({ ...options, seed: 100, outDir: other });
    const goodA = await readFile(join(first, 'good', 'good_000.png'));
    const goodB = await readFile(join(other, 'good', 'good_000.png'));
    expect(goodA.equals(goodB)).toBe(false);
  });
});

/** Runs `fn` with stderr muted, so expected CLI messages do not clutter the test output. */
async function withQuietStderr<T>(fn: () => Promise<T>): Promise<T> {
  const original = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return await fn();
  } finally {
    process.stderr.write = original;
  }
}

describe('generate CLI', () => {
  it('writes a set and exits 0', async () => {
    const out = await tempDir();
    const code = await withQuietStderr(() => generateCli(['--out', out, '--part', 'machined-surface', '--good', '1', '--bad', '1', '--seed', '4', '--width', '64', '--height', '64', '--defects', 'pit', '--quiet']));
    expect(code).toBe(0);
    expect(await listFiles(out)).toEqual([join('bad', 'pit', 'pit_000.png'), join('good', 'good_000.png'), join('masks', 'pit', 'pit_000.png')]);
  });

  it('exits 2 on bad usage', async () => {
    const out = await tempDir();
    const run = (args: string[]): Promise<number> => withQuietStderr(() => generateCli(['--out', out, ...args]));
    expect(await run(['--part', 'gearbox'])).toBe(2);
    expect(await run(['--part', 'bracket', '--good', '-3'])).toBe(2);
    expect(await run(['--part', 'machined-surface', '--defects', 'missing_feature'])).toBe(2);
    expect(await run(['--part', 'bracket', '--width', '4'])).toBe(2);
    expect(await run(['--good', '1'])).toBe(2); // --part is required
  });
});
