/**
 * Measures `visq model fit` on 200 good images of 1 MP (1024×1024), the size the fit is promised
 * to handle in under 5 minutes on 2 cores. The images come from the fixture generator (two
 * generator processes in parallel, 100 images each, different seeds) into a temporary folder that
 * is deleted afterwards unless --images names a folder to keep and reuse. Then the real CLI
 * (dist/app/cli.js, so run `npm run build` first) fits with default settings and is timed end to end.
 *
 *   npm run build && npx tsx tools/measure-fit-time.ts [--images <dir>] [--count 200] [--size 1024]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repositoryRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));

function run(command: string, args: string[], onStderr?: (text: string) => void): Promise<{ code: number | null; stdout: string }> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => onStderr?.(String(d)));
    child.on('close', (code) => done({ code, stdout }));
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { images: { type: 'string' }, count: { type: 'string', default: '200' }, size: { type: 'string', default: '1024' } } });
  const count = Number(values.count);
  const size = Number(values.size);
  const cli = join(repositoryRoot, 'dist', 'app', 'cli.js');
  const generator = join(repositoryRoot, 'tools', 'fixtures', 'generate.ts');
  if (!existsSync(cli)) throw new Error('run `npm run build` first (needs dist/app/cli.js)');
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const work = await mkdtemp(join(tmpdir(), 'visq-fit-time-'));
  const images = resolve(values.images ?? join(work, 'images'));
  try {
    const halves = [Math.ceil(count / 2), Math.floor(count / 2)];
    const existing = existsSync(images) ? (await readdir(images, { recursive: true })).filter((f) => String(f).endsWith('.png')).length : 0;
    if (existing < count) {
      log(`generating ${count} good ${size}×${size} machined-surface images in ${images} (2 generator processes)`);
      const started = performance.now();
      const results = await Promise.all(
        halves.map((n, i) =>
          run(process.execPath, ['--import', 'tsx', generator, '--out', join(images, `set-${i}`), '--part', 'machined-surface', '--good', String(n), '--bad', '0', '--seed', String(4100 + i), '--width', String(size), '--height', String(size), '--quiet']),
        ),
      );
      if (results.some((r) => r.code !== 0)) throw new Error('the fixture generator failed');
      log(`generated in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
    const out = join(work, 'model');
    log(`timing: node dist/app/cli.js model fit --good ${images} --out ${out}`);
    const started = performance.now();
    const fit = await run(process.execPath, [cli, 'model', 'fit', '--good', images, '--out', out], (text) => process.stderr.write(text));
    const seconds = (performance.now() - started) / 1000;
    if (fit.code !== 0) throw new Error(`model fit exited ${fit.code}`);
    // pretrained reports its input as { width, height, tiles }, pca-patches as a square inputSize.
    const summary = JSON.parse(fit.stdout) as { trainingImages: number; method: string; input?: unknown; inputSize?: number; modelBytes?: number };
    process.stdout.write(
      `${JSON.stringify({ images: summary.trainingImages, image_size: `${size}x${size}`, method: summary.method, input: summary.input ?? summary.inputSize, model_bytes: summary.modelBytes, fit_seconds: Number(seconds.toFixed(1)), cores: cpus().length }, null, 2)}\n`,
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`measure-fit-time failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
