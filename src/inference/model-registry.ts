import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { manifestSchema, type Manifest } from './manifest.js';
import { describeIssues } from '../validation-issues.js';

/** A model folder that cannot be used; the message says which folder and what is wrong. */
export class ModelLoadError extends Error {}

export interface RegisteredModel {
  manifest: Manifest;
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
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ModelLoadError(`${where}: invalid model.json: ${describeIssues(parsed.error).join('; ')}`);
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

type Shape = readonly (number | string)[];
const shapeText = (shape: Shape) => `[${shape.join(', ')}]`;
const plural = (n: number, word: string) => `${n} ${n === 1 ? word : word.endsWith('s') ? `${word}es` : `${word}s`}`;

/**
 * Checks the manifest against the graph: input name, rank, size and channels; every output the
 * manifest names; and, where the graph states them, each output's rank and its class dimension
 * against `labels`. Symbolic dimensions (and outputs whose shape the graph leaves open) pass here;
 * a task meeting a different shape at run time fails that inspection with the reason.
 */
export function checkGraph(manifest: Manifest, session: Pick<ort.InferenceSession, 'inputMetadata' | 'outputMetadata' | 'inputNames' | 'outputNames'>, where: string): void {
  const input = session.inputMetadata.find((m) => m.name === manifest.input.name);
  if (!input) throw new ModelLoadError(`${where}: the graph has no input "${manifest.input.name}" (it has ${session.inputNames.join(', ')})`);
  if (input.isTensor) {
    const { layout, width, height } = manifest.input;
    const channels = manifest.input.channels === 'GRAY' ? 1 : 3;
    const expected = layout === 'NCHW' ? [null, channels, height, width] : [null, height, width, channels];
    const described = `[N, ${expected.slice(1).join(', ')}] (${layout})`;
    if (input.shape.length !== 4) throw new ModelLoadError(`${where}: input "${input.name}" has ${input.shape.length} dimensions, expected 4 (${layout})`);
    const channelAxis = layout === 'NCHW' ? 1 : 3;
    const graphChannels = input.shape[channelAxis];
    if (typeof graphChannels === 'number' && graphChannels !== channels) {
      throw new ModelLoadError(`${where}: input "${input.name}" has shape ${shapeText(input.shape)}, but model.json describes ${described}: ${plural(graphChannels, 'channel')} in the graph, ${channels} for ${manifest.input.channels}`);
    }
    input.shape.forEach((d, i) => {
      const want = expected[i];
      if (want !== null && want !== undefined && typeof d === 'number' && d !== want) {
        throw new ModelLoadError(`${where}: input "${input.name}" has shape ${shapeText(input.shape)}, but model.json describes ${described}`);
      }
    });
    if (input.type !== 'float32') throw new ModelLoadError(`${where}: input "${input.name}" is ${input.type}, but visq feeds float32 tensors`);
  }
  const outputNames = outputsOf(manifest);
  for (const name of outputNames) {
    if (!session.outputNames.includes(name)) {
      throw new ModelLoadError(`${where}: the graph has no output "${name}" (it has ${session.outputNames.join(', ')})`);
    }
  }
  const shapeOf = (name: string): Shape | null => {
    const m = session.outputMetadata.find((o) => o.name === name);
    return m && m.isTensor && m.shape.length > 0 ? m.shape : null;
  };
  const labels = 'labels' in manifest ? manifest.labels : [];
  const labelList = `${plural(labels.length, 'label')} (${labels.join(', ')})`;
  switch (manifest.task) {
    case 'anomaly':
      return;
    case 'classification': {
      const name = manifest.outputs.scores;
      const shape = shapeOf(name);
      if (!shape) return;
      if (shape.length !== 2) throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but class scores are [N, classes] (2 dimensions)`);
      const c = shape[1];
      if (typeof c === 'number' && c !== labels.length) throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)}: ${plural(c, 'class')} in the graph, but model.json has ${labelList}`);
      return;
    }
    case 'detection': {
      const name = manifest.outputs.predictions;
      const shape = shapeOf(name);
      if (!shape) return;
      if (shape.length !== 3) throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but YOLO predictions are [1, 4 + classes, anchors] (3 dimensions)`);
      const rows = shape[1];
      if (typeof rows === 'number' && rows !== 4 + labels.length) {
        throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)}: 4 box values + ${plural(rows - 4, 'class')} in the graph, but model.json has ${labelList}`);
      }
      return;
    }
    case 'segmentation': {
      const name = manifest.outputs.mask;
      const shape = shapeOf(name);
      if (!shape) return;
      const layout = manifest.outputs.layout;
      if (layout === 'scores') {
        if (shape.length !== 4) throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but "scores" masks are [N, classes, H, W] (4 dimensions)`);
        const c = shape[1];
        if (typeof c === 'number' && c !== labels.length) throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)}: ${plural(c, 'class')} in the graph, but model.json has ${labelList}`);
        return;
      }
      if (shape.length !== 3 && shape.length !== 4) {
        throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)} (${shape.length} dimensions), but "${layout}" masks are [N, H, W] or [N, 1, H, W]`);
      }
      const c = shape[1];
      if (shape.length === 4 && typeof c === 'number' && c !== 1) {
        throw new ModelLoadError(`${where}: output "${name}" has shape ${shapeText(shape)}: ${plural(c, 'channel')}, but a "${layout}" mask has 1 ([N, 1, H, W])${layout === 'probability' ? '; per-class scores need outputs.layout "scores"' : ''}`);
      }
      return;
    }
  }
}

/** The output names a manifest relies on. */
function outputsOf(manifest: Manifest): string[] {
  switch (manifest.task) {
    case 'anomaly':
      return [manifest.outputs.score, manifest.outputs.map].filter((n): n is string => n !== undefined);
    case 'classification':
      return [manifest.outputs.scores];
    case 'detection':
      return [manifest.outputs.predictions];
    case 'segmentation':
      return [manifest.outputs.mask];
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
