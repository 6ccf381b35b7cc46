import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { modelManifestSchema, type ModelManifest } from './manifest.js';

/** A model folder that cannot be used; the message says which folder and what is wrong. */
export class ModelLoadError extends Error {}

export interface RegisteredModel {
  manifest: ModelManifest;
  dir: string;
  onnxPath: string;
}

export type ModelRegistry = ReadonlyMap<string, RegisteredModel>;

/** Reads and checks one model folder: manifest schema, file hash, and the graph's inputs and outputs. */
export async function loadModelFolder(dir: string): Promise<RegisteredModel> {
  const where = `model folder ${dir}`;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  } catch (err) {
    throw new ModelLoadError(`${where}: cannot read model.json: ${(err as Error).message}`);
  }
  const parsed = modelManifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ModelLoadError(`${where}: invalid model.json: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const manifest = parsed.data;
  const onnxPath = path.join(dir, manifest.file);
  let bytes: Buffer;
  try {
    bytes = await readFile(onnxPath);
  } catch (err) {
    throw new ModelLoadError(`${where}: cannot read ${manifest.file}: ${(err as Error).message}`);
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== manifest.sha256) {
    throw new ModelLoadError(`${where}: ${manifest.file} has sha256 ${actual}, but model.json says ${manifest.sha256}`);
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes);
  } catch (err) {
    throw new ModelLoadError(`${where}: onnxruntime cannot load ${manifest.file}: ${(err as Error).message}`);
  }
  try {
    checkGraph(manifest, session, where);
  } finally {
    await session.release();
  }
  return { manifest, dir, onnxPath };
}

function checkGraph(manifest: ModelManifest, session: ort.InferenceSession, where: string): void {
  const input = session.inputMetadata.find((m) => m.name === manifest.input.name);
  if (!input) throw new ModelLoadError(`${where}: the graph has no input "${manifest.input.name}" (it has ${session.inputNames.join(', ')})`);
  if (input.isTensor) {
    const channels = manifest.input.channels === 'GRAY' ? 1 : 3;
    const expected = manifest.input.layout === 'NCHW' ? [null, channels, manifest.input.height, manifest.input.width] : [null, manifest.input.height, manifest.input.width, channels];
    if (input.shape.length !== 4) throw new ModelLoadError(`${where}: input "${input.name}" has ${input.shape.length} dimensions, expected 4 (${manifest.input.layout})`);
    input.shape.forEach((d, i) => {
      const want = expected[i];
      if (want !== null && typeof d === 'number' && d !== want) {
        throw new ModelLoadError(`${where}: input "${input.name}" has shape [${input.shape.join(', ')}], but model.json describes [N, ${expected.slice(1).join(', ')}] (${manifest.input.layout})`);
      }
    });
  }
  for (const name of Object.values(manifest.outputs)) {
    if (name && !session.outputNames.includes(name)) {
      throw new ModelLoadError(`${where}: the graph has no output "${name}" (it has ${session.outputNames.join(', ')})`);
    }
  }
}

/** Loads every folder with a model.json; any broken model is an error (visq never serves half-configured). */
export async function loadRegistry(modelsDir: string): Promise<ModelRegistry> {
  let entries;
  try {
    entries = await readdir(modelsDir, { withFileTypes: true });
  } catch (err) {
    throw new ModelLoadError(`cannot read the model registry ${modelsDir}: ${(err as Error).message}`);
  }
  const registry = new Map<string, RegisteredModel>();
  for (const e of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = path.join(modelsDir, e.name);
    const hasManifest = await readFile(path.join(dir, 'model.json')).then(() => true, () => false);
    if (!hasManifest) continue;
    const model = await loadModelFolder(dir);
    const clash = registry.get(model.manifest.id);
    if (clash) throw new ModelLoadError(`model id "${model.manifest.id}" is used by both ${clash.dir} and ${dir}`);
    registry.set(model.manifest.id, model);
  }
  return registry;
}

export function measureCatalog(registry: ModelRegistry): Map<string, string[]> {
  return new Map([...registry].map(([id, m]) => [id, m.manifest.measures]));
}
