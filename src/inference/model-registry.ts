import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { dryRun, type DryRun } from './dry-run.js';
import { channelCount } from './preprocess.js';
import { parseManifest, taskOf, type Manifest } from './manifest.js';
import { plural, shapeText } from './tasks/types.js';

/** A model folder that cannot be used; the message says which folder and what is wrong. */
export class ModelLoadError extends Error {}

export interface RegisteredModel {
  manifest: Manifest;
  dir: string;
  onnxPath: string;
  /** The run on a generated image that proved the task can read the model's outputs. */
  dryRun: DryRun;
}

export type ModelRegistry = ReadonlyMap<string, RegisteredModel>;

/**
 * Reads and checks one model folder: manifest schema, file hash, the graph's input and outputs, and
 * one run on a generated image (output shapes the graph leaves open are only known from a run).
 */
export async function loadModelFolder(dir: string): Promise<RegisteredModel> {
  const where = `model folder ${dir}`;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  } catch (err) {
    throw new ModelLoadError(`${where}: cannot read model.json: ${(err as Error).message}`);
  }
  const parsed = parseManifest(raw);
  if (!parsed.ok) throw new ModelLoadError(`${where}: invalid model.json: ${parsed.problems.join('; ')}`);
  const manifest = parsed.manifest;
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
    const run = await dryRun(session, manifest).catch((err: Error) => { throw new ModelLoadError(`${where}: ${err.message}`); });
    return { manifest, dir, onnxPath, dryRun: run };
  } finally {
    await session.release();
  }
}

type Shape = readonly (number | string)[];

/**
 * Checks the manifest against the graph: input name, type, rank, size and channels; every output
 * the manifest names; and, where the graph states them, each output's shape as its task reads it.
 * Symbolic dimensions pass here; the dry run checks what the model really returns.
 */
export function checkGraph(manifest: Manifest, session: Pick<ort.InferenceSession, 'inputMetadata' | 'outputMetadata' | 'inputNames' | 'outputNames'>, where: string): void {
  const input = session.inputMetadata.find((m) => m.name === manifest.input.name);
  if (!input) throw new ModelLoadError(`${where}: the graph has no input "${manifest.input.name}" (it has ${session.inputNames.join(', ')})`);
  if (input.isTensor) {
    const { layout, width, height } = manifest.input;
    const channels = channelCount(manifest.input);
    const expected = layout === 'NCHW' ? [null, channels, height, width] : [null, height, width, channels];
    const described = `[N, ${expected.slice(1).join(', ')}] (${layout})`;
    if (input.shape.length !== 4) throw new ModelLoadError(`${where}: input "${input.name}" has ${input.shape.length} dimensions, expected 4 (${layout})`);
    const graphChannels = input.shape[layout === 'NCHW' ? 1 : 3];
    if (typeof graphChannels === 'number' && graphChannels !== channels) {
      const hint = graphChannels === 4 ? '; a 4-channel model takes "channels": "RGBA"' : graphChannels === 1 ? '; a 1-channel model takes "channels": "GRAY"' : '';
      throw new ModelLoadError(`${where}: input "${input.name}" has shape ${shapeText(input.shape)}, but model.json describes ${described}: ${plural(graphChannels, 'channel')} in the graph, ${channels} for ${manifest.input.channels}${hint}`);
    }
    input.shape.forEach((d, i) => {
      const want = expected[i];
      if (want !== null && want !== undefined && typeof d === 'number' && d !== want) {
        throw new ModelLoadError(`${where}: input "${input.name}" has shape ${shapeText(input.shape)}, but model.json describes ${described}`);
      }
    });
    if (input.type !== 'float32') throw new ModelLoadError(`${where}: input "${input.name}" is ${input.type}, but visq feeds float32 tensors`);
  }
  const task = taskOf(manifest);
  for (const name of task.outputNames(manifest)) {
    if (!session.outputNames.includes(name)) {
      throw new ModelLoadError(`${where}: the graph has no output "${name}" (it has ${session.outputNames.join(', ')})`);
    }
    const meta = session.outputMetadata.find((o) => o.name === name);
    const shape: Shape | null = meta && meta.isTensor && meta.shape.length > 0 ? meta.shape : null;
    const problem = shape ? task.checkOutput(manifest, name, shape) : null;
    if (problem) throw new ModelLoadError(`${where}: ${problem}`);
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
