import type { z } from 'zod';
import { didYouMean, listFew } from '../text.js';
import { describeIssues } from '../validation-issues.js';
import type { MeasureSpec } from './manifest-fields.js';
import { tasks } from './tasks/index.js';
import type { ModelTask } from './tasks/types.js';

/**
 * The model manifest (`models/<id>/model.json`, CONTRACT.md "Model registry"): the fields every task
 * shares (manifest-fields.ts) and those of its task (tasks/<task>.ts), chosen by `task`.
 */
export type Manifest = z.output<(typeof tasks)[number]['schema']>;
export type ModelTaskName = Manifest['task'];
export type { ModelInput, MeasureSpec, Interpolation } from './manifest-fields.js';
export type { AnomalyManifest } from './tasks/anomaly.js';
export type { ClassificationManifest } from './tasks/classification.js';
export type { DetectionManifest } from './tasks/detection.js';
export type { SegmentationManifest } from './tasks/segmentation.js';
export type { InstanceSegmentationManifest } from './tasks/instance-segmentation.js';

const byName = new Map<string, ModelTask<Manifest>>(tasks.map((t) => [t.name, t as unknown as ModelTask<Manifest>]));
export const taskNames = [...byName.keys()];

/** The task module a manifest belongs to. */
export function taskOf(manifest: Manifest): ModelTask<Manifest> {
  return byName.get(manifest.task)!;
}

/** What a model yields, with the values each measure promises. */
export function measureSpecs(manifest: Manifest): MeasureSpec[] {
  return taskOf(manifest).measures(manifest);
}

export type ManifestParse = { ok: true; manifest: Manifest } | { ok: false; problems: string[] };

/** Validates a `model.json` document; each problem leads with where and what, long lists cut short. */
export function parseManifest(doc: unknown): ManifestParse {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, problems: ['model.json must be a JSON object'] };
  const name = (doc as { task?: unknown }).task;
  if (typeof name !== 'string') return { ok: false, problems: [`task: missing; one of ${listFew(taskNames)}`] };
  const task = byName.get(name);
  if (!task) return { ok: false, problems: [`task: unknown task "${name}"${didYouMean(name, taskNames)}; one of ${listFew(taskNames)}`] };
  const parsed = task.schema.safeParse(doc);
  if (parsed.success) return { ok: true, manifest: parsed.data };
  const problems = describeIssues(parsed.error, '(manifest)', task.schema);
  return { ok: false, problems: problems.length > 8 ? [...problems.slice(0, 8), `…and ${problems.length - 8} more problems`] : problems };
}

/** Parses a manifest or throws with every problem (for code that writes manifests itself). */
export function manifestOrThrow(doc: unknown): Manifest {
  const r = parseManifest(doc);
  if (!r.ok) throw new Error(`invalid model.json: ${r.problems.join('; ')}`);
  return r.manifest;
}
