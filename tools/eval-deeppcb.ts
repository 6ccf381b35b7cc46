/**
 * Fits and measures an anomaly model on real images: the DeepPCB subset in shared/datasets/deeppcb
 * (printed-circuit-board crops, MIT licence; read in place, never copied into the repository).
 *
 * Split (deterministic): the template/test pairs of every group, sorted by pair id; pairs at even
 * positions are for fitting (their defect-free template only), pairs at odd positions are held out.
 * Held-out good = those pairs' templates, held-out bad = their defective test images (same board
 * regions, so a score difference comes from the defects alone). The model never sees a held-out
 * board region. Fitting uses the default settings of `visq model fit` (no validation images:
 * cross-validated threshold), through the same library functions the CLI calls.
 *
 * Pixel AUROC is against the annotated defect boxes (filled rectangles), a coarse stand-in for masks.
 *
 *   npx tsx tools/eval-deeppcb.ts [--data ../shared/datasets/deeppcb] [--out <model dir>] [--json]
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { auroc, evaluateAnomalyModel, fitAnomalyModel, measureLatency } from '../src/model-fit/index.js';

const repositoryRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const DEFAULT_DATA = resolve(repositoryRoot, '..', 'shared', 'datasets', 'deeppcb');

export interface DeepPcbPair {
  id: string;
  group: string;
  template: string;
  test: string;
  annotations: string;
}

/** Every template/test pair, sorted by group and id. */
export async function listPairs(root: string): Promise<DeepPcbPair[]> {
  const pairs: DeepPcbPair[] = [];
  for (const groupDir of (await readdir(root)).filter((d) => /^group\d+$/.test(d)).sort()) {
    const group = groupDir.slice('group'.length);
    const images = join(root, groupDir, group);
    for (const file of (await readdir(images)).filter((f) => f.endsWith('_temp.jpg')).sort()) {
      const id = file.slice(0, -'_temp.jpg'.length);
      pairs.push({ id, group, template: join(images, file), test: join(images, `${id}_test.jpg`), annotations: join(root, groupDir, `${group}_not`, `${id}.txt`) });
    }
  }
  return pairs;
}

/** Writes a box mask (255 inside any annotated defect box) the size of the test image. */
async function writeBoxMask(pair: DeepPcbPair, path: string): Promise<void> {
  const { width = 640, height = 640 } = await sharp(pair.test).metadata();
  const mask = Buffer.alloc(width * height);
  const lines = (await readFile(pair.annotations, 'utf8')).split('\n').filter((l) => l.trim());
  for (const line of lines) {
    const [x1, y1, x2, y2] = line.trim().split(/[\s,]+/).map(Number) as [number, number, number, number];
    for (let y = Math.max(0, y1); y <= Math.min(height - 1, y2); y++) mask.fill(255, y * width + Math.max(0, x1), y * width + Math.min(width - 1, x2) + 1);
  }
  await sharp(mask, { raw: { width, height, channels: 1 } }).png().toFile(path);
}

const round = (value: number, digits = 4): number => Number(value.toFixed(digits));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { data: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean', default: false } } });
  const root = resolve(values.data ?? DEFAULT_DATA);
  if (!existsSync(root)) {
    process.stderr.write(`eval-deeppcb: no DeepPCB data at ${root} (expected shared/datasets/deeppcb beside the repository, or --data <dir>)\n`);
    process.exitCode = 2;
    return;
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const work = await mkdtemp(join(tmpdir(), 'visq-deeppcb-'));
  const outDir = resolve(values.out ?? join(work, 'model'));
  try {
    const pairs = await listPairs(root);
    const fitPairs = pairs.filter((_, i) => i % 2 === 0);
    const heldOut = pairs.filter((_, i) => i % 2 === 1);
    log(`DeepPCB: ${pairs.length} pairs; fitting on ${fitPairs.length} templates, holding out ${heldOut.length} pairs`);

    const fitStarted = performance.now();
    const fit = await fitAnomalyModel({
      goodImages: fitPairs.map((p) => p.template),
      outDir,
      id: 'deeppcb-anomaly',
      version: '0.0.0',
      onProgress: ({ stage, message, done }) => {
        if (done === undefined) log(`[${stage}] ${message}`);
      },
      card: {
        data: `DeepPCB subset (${root}): ${fitPairs.length} defect-free templates (even positions of the sorted pairs)`,
        reproduce: 'npx tsx tools/eval-deeppcb.ts',
        license: 'model fitted on DeepPCB (MIT licence); for evaluation only',
      },
    });
    const fitSeconds = (performance.now() - fitStarted) / 1000;

    const maskDir = join(work, 'box-masks');
    await mkdir(maskDir, { recursive: true });
    const masks = new Map<string, string>();
    for (const pair of heldOut) {
      const path = join(maskDir, `${pair.id}.png`);
      await writeBoxMask(pair, path);
      masks.set(pair.test, path);
    }
    const evaluation = await evaluateAnomalyModel({ modelDir: outDir, good: heldOut.map((p) => p.template), bad: heldOut.map((p) => p.test), masks });
    const scoreOf = new Map(evaluation.scores.map((s) => [s.file, s.score]));
    const perGroup: Record<string, { pairs: number; image_auroc: number }> = {};
    for (const group of [...new Set(heldOut.map((p) => p.group))]) {
      const inGroup = heldOut.filter((p) => p.group === group);
      const good = inGroup.map((p) => scoreOf.get(p.template) as number);
      const bad = inGroup.map((p) => scoreOf.get(p.test) as number);
      perGroup[group] = { pairs: inGroup.length, image_auroc: round(auroc([...good, ...bad], [...good.map(() => 0), ...bad.map(() => 1)])) };
    }
    const latency = await measureLatency(outDir, heldOut.map((p) => p.template), 50, 1);
    const goodFlagged = evaluation.scores.filter((s) => s.label === 'good' && s.score >= 0.5).length;
    const badFound = evaluation.scores.filter((s) => s.label === 'bad' && s.score >= 0.5).length;
    const result = {
      dataset: 'DeepPCB subset',
      fit_templates: fit.trainingImages,
      held_out_good: heldOut.length,
      held_out_bad: heldOut.length,
      input_size: fit.manifest.input.width,
      image_auroc: round(evaluation.auroc),
      image_f1_at_0_5: round(evaluation.f1),
      good_flagged_at_0_5: goodFlagged,
      bad_found_at_0_5: badFound,
      pixel_auroc_boxes: evaluation.pixelAuroc === null ? null : round(evaluation.pixelAuroc),
      per_group: perGroup,
      fit_seconds: round(fitSeconds, 1),
      inference_p50_ms_1_thread: round(latency.p50Ms, 2),
      inference_p90_ms_1_thread: round(latency.p90Ms, 2),
      skipped: fit.skipped.length + evaluation.skipped.length,
    };
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      const lines = [
        `DeepPCB: fit on ${result.fit_templates} templates in ${result.fit_seconds} s (input ${result.input_size} px, default settings)`,
        `held out: ${result.held_out_good} templates (good) vs ${result.held_out_bad} defective test images`,
        `image AUROC        ${result.image_auroc}`,
        `F1 at 0.5          ${result.image_f1_at_0_5} (bad found ${badFound}/${heldOut.length}, good flagged ${goodFlagged}/${heldOut.length})`,
        `pixel AUROC (boxes) ${result.pixel_auroc_boxes}`,
        ...Object.entries(perGroup).map(([group, g]) => `  group ${group}: ${g.pairs} pairs, image AUROC ${g.image_auroc}`),
        `model time p50     ${result.inference_p50_ms_1_thread} ms per image (onnxruntime-node, 1 thread; p90 ${result.inference_p90_ms_1_thread} ms)`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`eval-deeppcb failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
