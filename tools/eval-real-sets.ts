/**
 * Measures `visq model fit` on public real defect data sets, read in place (never copied into the
 * repository), with one protocol for all: fit on good images only with default settings, then score
 * held-out good and defective images the fit never saw. Each method of `--method` is measured the
 * same way, so the README's table compares them on the same split.
 *
 * Sets (each a public GitHub repository fetched as a bare mirror; images are read with `git show`
 * into a temporary folder that is deleted afterwards):
 *   magnetic-tile  abin24/Magnetic-tile-defect-datasets.   MT_Free good; blowhole, break, crack, fray, uneven bad
 *   kolektorsdd    stoy95536/KolektorSDD_Yolov8_Datasets   KolektorSDD (commutators); an image without a defect box is good
 *   casting        maomao7784/Casting-Product-Quality-Inspection   cast impellers, top view: ok_front good, def_front bad
 *   elpv           zae-bayern/elpv-dataset                 solar cells (EL images), mono: probability 0 good, 1 bad
 *   deeppcb        ../shared/datasets/deeppcb              PCB crops: templates good, test images bad (as tools/eval-deeppcb.ts)
 *
 * Split (seeded, deterministic): up to 200 good images to fit, then up to 200 other good and up to
 * 200 defective images held out (DeepPCB: even/odd pairs, as eval-deeppcb.ts).
 *
 *   npx tsx tools/eval-real-sets.ts [--mirrors /work/.mirror] [--sets magnetic-tile,casting] [--methods auto,pretrained,pca-patches] [--tiling auto|on|off] [--json]
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { hashSeed, Random } from '../src/model-fit/random.js';
import { evaluateAnomalyModel, fitAnomalyModel, measureLatency } from '../src/model-fit/index.js';
import type { TilingMode } from '../src/model-fit/input-geometry.js';
import { fitPretrainedModel, UnalignedImagesError } from '../src/model-fit/pretrained-fit.js';

const repositoryRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TRAIN_GOOD = 200;
const TEST_GOOD = 200;
const TEST_BAD = 200;

interface Split {
  train: string[];
  testGood: string[];
  testBad: string[];
  note: string;
}

interface LabelledFiles {
  good: string[];
  bad: string[];
}

function git(mirror: string, args: string[]): Buffer {
  return execFileSync('git', ['-C', mirror, ...args], { maxBuffer: 1 << 30 });
}

/** Writes the mirror's files whose paths pass `keep` into `dir`, returning the written paths by repository path. */
async function extract(mirror: string, dir: string, keep: (path: string) => boolean): Promise<Map<string, string>> {
  await mkdir(dir, { recursive: true });
  // One `git cat-file --batch` for all blobs: a `git show` per file takes minutes for thousands of images.
  const entries = git(mirror, ['ls-tree', '-r', 'HEAD'])
    .toString()
    .split('\n')
    .map((line) => /^\d+ blob ([0-9a-f]+)\t(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && keep(m[2] as string));
  const output = execFileSync('git', ['-C', mirror, 'cat-file', '--batch'], { input: entries.map((m) => m[1]).join('\n') + '\n', maxBuffer: 2 ** 31 });
  const written = new Map<string, string>();
  let offset = 0;
  for (const m of entries) {
    const headerEnd = output.indexOf(10, offset);
    const size = Number(output.subarray(offset, headerEnd).toString().split(' ')[2]);
    const target = join(dir, (m[2] as string).replaceAll('/', '__'));
    await writeFile(target, output.subarray(headerEnd + 1, headerEnd + 1 + size));
    written.set(m[2] as string, target);
    offset = headerEnd + 1 + size + 1;
  }
  return written;
}

function shuffled<T>(items: readonly T[], seed: string): T[] {
  const random = new Random(hashSeed(seed));
  const out = [...items].sort();
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function split(name: string, files: LabelledFiles, note: string): Split {
  const good = shuffled(files.good, `${name}-good`);
  const bad = shuffled(files.bad, `${name}-bad`);
  return { train: good.slice(0, TRAIN_GOOD), testGood: good.slice(TRAIN_GOOD, TRAIN_GOOD + TEST_GOOD), testBad: bad.slice(0, TEST_BAD), note };
}

type SetReader = (mirrors: string, work: string) => Promise<Split>;

const SETS: Record<string, { source: string; licence: string; read: SetReader }> = {
  'magnetic-tile': {
    source: 'github.com/abin24/Magnetic-tile-defect-datasets. (Huang et al., "Surface defect saliency of magnetic tile", 2018)',
    licence: 'no licence file; published for research use with citation',
    read: async (mirrors, work) => {
      const files = await extract(join(mirrors, 'abin24+Magnetic-tile-defect-datasets.', 'repo'), join(work, 'mt'), (p) => /^MT_\w+\/Imgs\/.*\.jpg$/.test(p));
      const all = [...files];
      return split('magnetic-tile', { good: all.filter(([p]) => p.startsWith('MT_Free/')).map(([, f]) => f), bad: all.filter(([p]) => !p.startsWith('MT_Free/')).map(([, f]) => f) }, 'MT_Free good; blowhole, break, crack, fray, uneven bad');
    },
  },
  kolektorsdd: {
    source: 'KolektorSDD (Tabernik et al. 2019) as github.com/stoy95536/KolektorSDD_Yolov8_Datasets (images with YOLO boxes)',
    licence: 'KolektorSDD: CC BY-NC-SA 4.0',
    read: async (mirrors, work) => {
      const files = await extract(join(mirrors, 'stoy95536+KolektorSDD_Yolov8_Datasets', 'repo'), join(work, 'ksdd'), (p) => /^Datasets\/(images|labels)\//.test(p));
      const good: string[] = [];
      const bad: string[] = [];
      for (const [path, file] of files) {
        if (!path.startsWith('Datasets/images/')) continue;
        const label = files.get(path.replace('Datasets/images/', 'Datasets/labels/').replace(/\.\w+$/, '.txt'));
        const boxes = label ? await readFile(label, 'utf8') : '';
        (boxes.trim() ? bad : good).push(file);
      }
      return split('kolektorsdd', { good, bad }, 'an image without a defect box is good');
    },
  },
  casting: {
    source: 'casting product image data for quality inspection (Dabhi, Kaggle) as github.com/maomao7784/Casting-Product-Quality-Inspection',
    licence: 'as published on Kaggle by its author (CC BY-NC-ND 4.0 there)',
    read: async (mirrors, work) => {
      const files = await extract(join(mirrors, 'maomao7784+Casting-Product-Quality-Inspection', 'repo'), join(work, 'cast'), (p) => /^data\/casting_data\/(train|test)\/(ok|def)_front\/.*\.(jpe?g|png)$/.test(p));
      const all = [...files];
      return split('casting', { good: all.filter(([p]) => p.includes('/ok_front/')).map(([, f]) => f), bad: all.filter(([p]) => p.includes('/def_front/')).map(([, f]) => f) }, 'ok_front good, def_front bad (300×300 gray top views)');
    },
  },
  elpv: {
    source: 'elpv-dataset (Buerhop-Lutz et al. 2018; Deitsch et al. 2019), github.com/zae-bayern/elpv-dataset',
    licence: 'CC BY-NC-SA 4.0',
    read: async (mirrors, work) => {
      const mirror = join(mirrors, 'zae-bayern+elpv-dataset', 'repo');
      const labels = git(mirror, ['show', 'HEAD:src/elpv_dataset/data/labels.csv']).toString();
      const byImage = new Map<string, { probability: number; type: string }>();
      for (const line of labels.split('\n')) {
        const [image, probability, type] = line.trim().split(/\s+/);
        if (image && probability && type) byImage.set(`src/elpv_dataset/data/${image}`, { probability: Number(probability), type });
      }
      const files = await extract(mirror, join(work, 'elpv'), (p) => byImage.get(p)?.type === 'mono');
      const all = [...files];
      return split('elpv', { good: all.filter(([p]) => byImage.get(p)?.probability === 0).map(([, f]) => f), bad: all.filter(([p]) => byImage.get(p)?.probability === 1).map(([, f]) => f) }, 'monocrystalline cells: defect probability 0 good, 1 bad');
    },
  },
  deeppcb: {
    source: 'DeepPCB (Tang et al. 2019), the subset in ../shared/datasets/deeppcb',
    licence: 'MIT',
    read: async () => {
      const root = resolve(repositoryRoot, '..', 'shared', 'datasets', 'deeppcb');
      const pairs: { template: string; test: string }[] = [];
      for (const groupDir of (await readdir(root)).filter((d) => /^group\d+$/.test(d)).sort()) {
        const images = join(root, groupDir, groupDir.slice('group'.length));
        for (const file of (await readdir(images)).filter((f) => f.endsWith('_temp.jpg')).sort()) pairs.push({ template: join(images, file), test: join(images, file.replace('_temp.jpg', '_test.jpg')) });
      }
      const fit = pairs.filter((_, i) => i % 2 === 0);
      const held = pairs.filter((_, i) => i % 2 === 1);
      return { train: fit.map((p) => p.template), testGood: held.map((p) => p.template), testBad: held.map((p) => p.test), note: 'even pairs fit (templates), odd pairs held out' };
    },
  },
};

/** auto is what `visq model fit` does by default; pca-patches was the default before pretrained features. */
const METHODS = ['auto', 'pretrained', 'pca-patches'] as const;
type Method = (typeof METHODS)[number];
const DEFAULT_METHODS: Method[] = ['auto', 'pca-patches'];
const round = (value: number, digits = 4): number => Number(value.toFixed(digits));

async function measure(method: Method, data: Split, outDir: string, tiling: TilingMode, log: (line: string) => void) {
  const started = performance.now();
  const progress = ({ stage, message, done }: { stage: string; message: string; done?: number }): void => {
    if (done === undefined) log(`  [${stage}] ${message}`);
  };
  let chosen: Method = method === 'auto' ? 'pretrained' : method;
  if (chosen === 'pretrained') {
    try {
      await fitPretrainedModel({ goodImages: data.train, outDir, id: 'real-set', version: '0.0.0', onProgress: progress, requireAlignment: method === 'auto', tiling });
    } catch (error) {
      if (!(error instanceof UnalignedImagesError)) throw error;
      chosen = 'pca-patches';
    }
  }
  if (chosen === 'pca-patches') await fitAnomalyModel({ goodImages: data.train, outDir, id: 'real-set', version: '0.0.0', onProgress: progress });
  const fitSeconds = (performance.now() - started) / 1000;
  const evaluation = await evaluateAnomalyModel({ modelDir: outDir, good: data.testGood, bad: data.testBad });
  const latency = await measureLatency(outDir, data.testGood, 30, 1);
  const good = evaluation.scores.filter((s) => s.label === 'good');
  const bad = evaluation.scores.filter((s) => s.label === 'bad');
  return {
    method,
    chosen,
    image_auroc: round(evaluation.auroc),
    false_reject_rate_at_0_5: round(good.filter((s) => s.score >= 0.5).length / good.length),
    defects_found_at_0_5: round(bad.filter((s) => s.score >= 0.5).length / bad.length),
    fit_seconds: round(fitSeconds, 1),
    p50_ms_1_thread: round(latency.p50Ms, 1),
    model_mb: round((await stat(join(outDir, 'model.onnx'))).size / 1e6, 1),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { tiling: { type: 'string', default: 'auto' }, mirrors: { type: 'string', default: '/work/.mirror' }, sets: { type: 'string' }, methods: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const setNames = values.sets ? values.sets.split(',') : Object.keys(SETS);
  const methods = (values.methods ? values.methods.split(',') : DEFAULT_METHODS) as Method[];
  for (const m of methods) if (!(METHODS as readonly string[]).includes(m)) throw new Error(`unknown method ${m}: one of ${METHODS.join(', ')}`);
  const results = [];
  for (const name of setNames) {
    const set = SETS[name];
    if (!set) throw new Error(`unknown set ${name}: one of ${Object.keys(SETS).join(', ')}`);
    const work = await mkdtemp(join(tmpdir(), `visq-real-${name}-`));
    try {
      let data: Split;
      try {
        data = await set.read(resolve(values.mirrors as string), work);
      } catch (error) {
        log(`${name}: not available (${(error as Error).message.split('\n')[0]}); fetch its mirror first`);
        continue;
      }
      log(`${name}: fit on ${data.train.length} good, held out ${data.testGood.length} good and ${data.testBad.length} defective (${data.note})`);
      for (const method of methods) {
        if (!existsSync(work)) await mkdir(work);
        const row = { set: name, source: set.source, licence: set.licence, train_good: data.train.length, test_good: data.testGood.length, test_bad: data.testBad.length, tiling: values.tiling, ...(await measure(method, data, join(work, `model-${method}`), values.tiling as TilingMode, log)) };
        log(`${name} ${method}: AUROC ${row.image_auroc}, fit ${row.fit_seconds} s, p50 ${row.p50_ms_1_thread} ms, ${row.model_mb} MB`);
        results.push(row);
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else {
    const lines = ['| set | method (chosen) | image AUROC | false rejects at 0.5 | defects found at 0.5 | fit (s) | p50 1 thread (ms) | model (MB) |', '|---|---|---|---|---|---|---|---|'];
    for (const r of results) lines.push(`| ${r.set} | ${r.method}${r.method === r.chosen ? '' : ` (${r.chosen})`} | ${r.image_auroc} | ${r.false_reject_rate_at_0_5} | ${r.defects_found_at_0_5} | ${r.fit_seconds} | ${r.p50_ms_1_thread} | ${r.model_mb} |`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`eval-real-sets failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
