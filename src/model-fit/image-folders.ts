/**
 * Finding images in the folders a quality engineer points `visq model fit/eval` at: a flat folder
 * of good images, or an MVTec-style tree (`bad/<defect type>/<name>`), and the defect masks that
 * belong to bad images (same relative name under the masks folder, or MVTec's `<name>_mask.png`).
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';

/** File extensions read as images (sharp decodes them). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp', '.bmp', '.gif'] as const;

export function isImageName(name: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(name).toLowerCase());
}

export interface ImageListing {
  /** Image files (by extension), sorted by relative path, with the folder joined in front. */
  images: string[];
  /** Other files found (not images by their extension), relative to the folder. */
  ignored: string[];
}

/** Lists image files under `dir`, recursively (hidden files and folders skipped), in a stable order. */
export async function listImages(dir: string): Promise<ImageListing> {
  const images: string[] = [];
  const ignored: string[] = [];
  const walk = async (folder: string): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true });
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (isImageName(entry.name)) images.push(path);
      else ignored.push(relative(dir, path));
    }
  };
  await walk(dir);
  const byRelative = (a: string, b: string): number => compareStrings(relative(dir, a), relative(dir, b));
  images.sort(byRelative);
  ignored.sort(compareStrings);
  return { images, ignored };
}

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Whether `path` is an existing directory. */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Candidate mask paths for a bad image at `relativePath` (relative to the bad-images folder), in
 * the order they are tried: the same relative path; the same with any image extension; MVTec's
 * `<name>_mask.<ext>`.
 */
export function maskCandidates(masksDir: string, relativePath: string): string[] {
  const extension = extname(relativePath);
  const stem = relativePath.slice(0, relativePath.length - extension.length);
  const candidates = [join(masksDir, relativePath)];
  for (const suffix of ['', '_mask']) {
    for (const ext of ['.png', extension, '.bmp', '.tif', '.tiff', '.jpg']) {
      const candidate = join(masksDir, `${stem}${suffix}${ext}`);
      if (!candidates.includes(candidate)) candidates.push(candidate);
    }
  }
  return candidates;
}

/** Maps each bad image to its mask, where one exists. */
export async function findMasks(badDir: string, badImages: readonly string[], masksDir: string): Promise<Map<string, string>> {
  const masks = await listImages(masksDir);
  const available = new Set(masks.images);
  const found = new Map<string, string>();
  for (const image of badImages) {
    const match = maskCandidates(masksDir, relative(badDir, image)).find((candidate) => available.has(candidate));
    if (match) found.set(image, match);
  }
  return found;
}

/** The defect type of a bad image: its first sub-folder under the bad folder, or null for a flat folder. */
export function defectTypeOf(badDir: string, image: string): string | null {
  const parts = relative(badDir, image).split(sep);
  return parts.length > 1 ? (parts[0] as string) : null;
}

/** A registry id from a folder name: lower-case letters, digits, ".", "_", "-", starting with a letter or digit. */
export function idFromFolder(folder: string): string {
  const id = basename(folder)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .replace(/-+$/, '');
  return id || 'anomaly-model';
}

export const MODEL_ID_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
