/**
 * Turns the generated training and validation images into the tensors train.py reads, with the
 * pipeline's own preprocessing (src/inference/preprocess.ts: sharp, stretched to the input size,
 * RGB), so the model is trained on exactly the pixels a visq worker will give it:
 *   <work>/<set>.u8    uint8 [N, 3, inputSize, inputSize] (pixel values before /255 and mean/std)
 *   <work>/<set>.json  {"count", "channels", "height", "width", "labels", "targets", "files"}
 *
 *   npx tsx tools/train-defect-classifier/prepare.ts --work <dir> [--sets train,validation]
 */
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { inputBytes, listSet, readConfig } from './lib.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { work: { type: 'string' }, sets: { type: 'string', default: 'train,validation' } } });
  if (!values.work) throw new Error('--work <dir> is required');
  const config = await readConfig();
  const size = config.inputSize;
  const input = { name: 'input', width: size, height: size, layout: 'NCHW', channels: 'RGB', resize: 'stretch', interpolation: 'lanczos3', normalization: null } as const;
  for (const set of values.sets.split(',')) {
    const samples = await listSet(join(values.work, set), config.labels);
    const plane = 3 * size * size;
    const tensor = new Uint8Array(samples.length * plane);
    for (const [i, s] of samples.entries()) tensor.set(await inputBytes(s.file, input), i * plane);
    await writeFile(join(values.work, `${set}.u8`), tensor);
    await writeFile(join(values.work, `${set}.json`), JSON.stringify({
      count: samples.length, channels: 3, height: size, width: size, labels: config.labels,
      targets: samples.map((s) => s.label), files: samples.map((s) => join(basename(join(s.file, '..')), basename(s.file))),
    }));
    process.stderr.write(`prepared ${samples.length} ${set} images (${size}×${size})\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`prepare failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
