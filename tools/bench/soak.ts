/**
 * `npm run soak`: a long stream of images (10,000 by default) through one `visq start` on this
 * machine, to show that it keeps its pace and its memory: throughput, latency from upload to the
 * verdict at an MQTT client, the event-loop delay of the visq process, and its resident memory at
 * the start, middle and end. Every accepted upload must reach the MES client as a verdict.
 */
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { postInspection, root, round, sleep, startVisq, summary, type VisqUnderTest } from './visq-under-test.js';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    images: { type: 'string', default: '10000' },
    concurrency: { type: 'string', default: '8' },
  },
});
const imageCount = Number(args.images);
const concurrency = Number(args.concurrency);
if (!(Number.isInteger(imageCount) && imageCount > 0 && Number.isInteger(concurrency) && concurrency > 0)) {
  process.stderr.write('--images and --concurrency take positive integers\n');
  process.exit(2);
}

const scrapeEveryMs = 2000;
/** Long enough for a failing job's retries with backoff, and for the reconciler (after 30 s), to decide it. */
const verdictWaitMs = 120_000;
/** A part not accepted after this long of 503, 429 or no answer counts as lost. */
const uploadGiveUpMs = 300_000;
/** Memory is compared from here on: the first parts allocate sessions, pools and caches that stay. */
const warmup = Math.min(500, Math.ceil(imageCount / 10));
const lotId = 'SOAK';
const say = (s: string) => process.stderr.write(`${s}\n`);
const mb = (bytes: number) => round(bytes / 2 ** 20, 1);

/** The part's good and defective fixture images, so verdicts are a mix as on a line. */
async function fixtureImages(): Promise<Buffer<ArrayBuffer>[]> {
  const dir = path.join(root, 'fixtures', 'images', 'machined-surface');
  const files = (await Promise.all(['good', 'bad'].map(async (sub) =>
    (await readdir(path.join(dir, sub), { recursive: true })).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(dir, sub, f)))))
    .flat();
  return Promise.all(files.map((f) => readFile(f)));
}

interface Sample { atS: number; verdicts: number; rssBytes: number; heapUsedBytes: number; lagP99S: number; lagMeanS: number }

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`/metrics has no ${name}`);
  return Number(m[1]);
}

/**
 * Scrapes visq's /metrics every 2 s. prom-client resets its event-loop histogram at each scrape,
 * so every sample's lag figures cover the 2 s before it.
 */
function sampleMetrics(visq: VisqUnderTest, verdictsSoFar: () => number, t0: number) {
  const samples: Sample[] = [];
  let failedScrapes = 0;
  let running = true;
  const scrape = async () => {
    const text = await (await fetch(`${visq.base}/metrics`)).text();
    const sample = {
      atS: round((performance.now() - t0) / 1000, 1), verdicts: verdictsSoFar(),
      rssBytes: metric(text, 'visq_process_resident_memory_bytes'), heapUsedBytes: metric(text, 'visq_nodejs_heap_size_used_bytes'),
      lagP99S: metric(text, 'visq_nodejs_eventloop_lag_p99_seconds'), lagMeanS: metric(text, 'visq_nodejs_eventloop_lag_mean_seconds'),
    };
    samples.push(sample);
    return sample;
  };
  const loop = (async () => {
    for (let n = 1; running; n++) {
      const s = await scrape().catch(() => { failedScrapes++; return null; });
      if (s && n % 5 === 0) {
        say(`  ${s.atS} s: ${s.verdicts}/${imageCount} verdicts, RSS ${mb(s.rssBytes)} MB, heap ${mb(s.heapUsedBytes)} MB, event-loop lag p99 ${round(s.lagP99S * 1000)} ms`);
      }
      await sleep(scrapeEveryMs);
    }
  })();
  return {
    samples,
    failedScrapes: () => failedScrapes,
    /** Stops the loop and takes the last sample, after everything has arrived. */
    async finish() {
      running = false;
      await loop;
      return scrape();
    },
  };
}

async function main() {
  const images = await fixtureImages();
  const modelsDir = process.env.VISQ_MODELS_DIR ?? path.join(root, 'models');
  say(`soak: starting visq (${process.env.REDIS_URL ? 'Redis' : 'PostgreSQL'} queue)…`);
  // One station per camera, as in a plant; backpressure and the per-station limits stay at their defaults.
  const visq = await startVisq('soak', modelsDir, { cameras: concurrency });
  try {
    // As the MES should run: a persistent session, so a reconnect of this client loses no verdict.
    const mes = await mqtt.connectAsync(visq.mqttUrl, { clientId: `${visq.topicPrefix}-mes`, clean: false });
    const verdicts = new Map<string, { at: number; verdict: string }>();
    const messageIds = new Set<string>();
    let messages = 0;
    const waiting = new Map<string, () => void>();
    mes.on('message', (_topic, payload) => {
      const at = performance.now();
      const m = JSON.parse(payload.toString()) as { messageId: string; id: string; verdict: string };
      messages++;
      messageIds.add(m.messageId);
      if (!verdicts.has(m.id)) verdicts.set(m.id, { at, verdict: m.verdict });
      waiting.get(m.id)?.();
    });
    await mes.subscribeAsync(`${visq.topicPrefix}/+/+/+/verdict`, { qos: 1 });
    const verdictArrival = (id: string) => new Promise<void>((resolve) => {
      if (verdicts.has(id)) return resolve();
      const done = () => { clearTimeout(timer); waiting.delete(id); resolve(); };
      const timer = setTimeout(done, verdictWaitMs);
      waiting.set(id, done);
    });

    /** Inspection id → when its part was first tried: a camera's latency includes its retries. */
    const accepted = new Map<string, number>();
    const retried = { backpressure503: 0, rateLimited429: 0, noAnswer: 0 };
    let repeatedAnswers = 0;
    const lost: string[] = [];
    /** Retries with the same Idempotency-Key, so a retry of an upload that did get in is answered with the first inspection. */
    const upload = async (serial: string, image: Buffer<ArrayBuffer>, camera: number): Promise<string | null> => {
      const firstTry = performance.now();
      for (;;) {
        const res = await postInspection(visq, image, serial, lotId, `soak-${serial}`, camera).catch(() => null);
        if (res?.status === 202 || res?.status === 200) {
          const { id } = (await res.json()) as { id: string };
          if (res.status === 200) repeatedAnswers++;
          accepted.set(id, firstTry);
          return id;
        }
        if (res && res.status !== 503 && res.status !== 429) {
          lost.push(`${serial}: ${res.status} ${await res.text()}`);
          return null;
        }
        if (!res) retried.noAnswer++;
        else if (res.status === 503) retried.backpressure503++;
        else retried.rateLimited429++;
        const waitMs = (Number(res?.headers.get('retry-after')) || 1) * 1000;
        await res?.arrayBuffer();
        if (performance.now() + waitMs - firstTry > uploadGiveUpMs) {
          lost.push(`${serial}: not accepted within ${uploadGiveUpMs / 1000} s`);
          return null;
        }
        await sleep(waitMs);
      }
    };

    say(`soak: ${imageCount} images (${images.length} fixtures in turn), ${concurrency} cameras each posting its next part when the previous verdict arrives…`);
    const t0 = performance.now();
    const sampler = sampleMetrics(visq, () => verdicts.size, t0);
    let next = 0;
    // Closed loop, as in the benchmark: latencies are those of a full pipeline, not of a queue the soak grows itself.
    const cameras = Promise.all(Array.from({ length: concurrency }, async (_, camera) => {
      while (next < imageCount) {
        const i = next++;
        const serial = `SOAK-${String(i).padStart(6, '0')}`;
        const id = await upload(serial, images[i % images.length]!, camera);
        if (id) await verdictArrival(id);
      }
    }));
    await Promise.race([cameras, visq.exited.then((how) => { throw new Error(`visq exited (${how}) during the soak`); })]);
    const endSample = await sampler.finish();
    await mes.endAsync();

    const received = [...accepted].filter(([id]) => verdicts.has(id));
    const latencies = received.map(([id, firstTry]) => verdicts.get(id)!.at - firstTry);
    const lastVerdictAt = Math.max(...received.map(([id]) => verdicts.get(id)!.at));
    const durationS = (lastVerdictAt - t0) / 1000;
    const byVerdict = (v: string) => received.filter(([id]) => verdicts.get(id)!.verdict === v).length;

    const samples = sampler.samples;
    const at = (verdictCount: number) => samples.find((s) => s.verdicts >= verdictCount) ?? endSample;
    const [start, middle] = [at(warmup), at(imageCount / 2)];
    const secondHalf = samples.filter((s) => s.verdicts >= imageCount / 2);
    const lagP99s = samples.filter((s) => s.verdicts > 0).map((s) => s.lagP99S);
    const result = {
      machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model, node: process.version },
      queue: process.env.REDIS_URL ? 'redis' : 'postgres',
      images: imageCount, concurrency,
      durationSeconds: round(durationS, 1),
      throughputPerSecond: round(received.length / durationS, 1),
      uploads: { accepted: accepted.size, lost: lost.length, repeatedAnswers, retried },
      verdicts: {
        distinct: received.length, messages, duplicates: messages - messageIds.size,
        notMatchingAnUpload: [...verdicts.keys()].filter((id) => !accepted.has(id)).length,
        PASS: byVerdict('PASS'), FAIL: byVerdict('FAIL'), REVIEW: byVerdict('REVIEW'),
      },
      latencyMs: summary(latencies),
      eventLoopLagMs: {
        p99Max: round(Math.max(...lagP99s) * 1000),
        p99Median: summary(lagP99s.map((s) => s * 1000)).p50,
        meanMax: round(Math.max(...samples.filter((s) => s.verdicts > 0).map((s) => s.lagMeanS)) * 1000),
      },
      residentMemoryMb: {
        start: mb(start.rssBytes), middle: mb(middle.rssBytes), end: mb(endSample.rssBytes),
        max: mb(Math.max(...samples.map((s) => s.rssBytes))),
        secondHalfMin: mb(Math.min(...secondHalf.map((s) => s.rssBytes))), secondHalfMax: mb(Math.max(...secondHalf.map((s) => s.rssBytes))),
        growthMiddleToEndPercent: round(((endSample.rssBytes - middle.rssBytes) / middle.rssBytes) * 100, 1),
      },
      heapUsedMb: { start: mb(start.heapUsedBytes), middle: mb(middle.heapUsedBytes), end: mb(endSample.heapUsedBytes) },
      memoryPoints: { startAfterVerdicts: start.verdicts, middleAfterVerdicts: middle.verdicts },
      failedScrapes: sampler.failedScrapes(),
      samples: samples.map((s) => ({ atS: s.atS, verdicts: s.verdicts, rssMb: mb(s.rssBytes), heapUsedMb: mb(s.heapUsedBytes), lagP99Ms: round(s.lagP99S * 1000) })),
    };
    const ok = lost.length === 0 && received.length === accepted.size;

    const r = result;
    say([
      `visq soak — ${r.machine.cores} cores (${r.machine.cpu}), node ${r.machine.node}, queue: ${r.queue}`,
      `${r.images} images, ${r.concurrency} cameras: ${r.durationSeconds} s, ${r.throughputPerSecond} images/s`,
      `uploads: ${r.uploads.accepted} accepted, ${r.uploads.lost} lost; retried after 503: ${retried.backpressure503}, 429: ${retried.rateLimited429}, no answer: ${retried.noAnswer}; answered as repeats: ${repeatedAnswers}`,
      `verdicts at the MQTT client: ${r.verdicts.distinct} distinct (PASS ${r.verdicts.PASS}, FAIL ${r.verdicts.FAIL}, REVIEW ${r.verdicts.REVIEW}), ${r.verdicts.duplicates} duplicate messages, ${r.verdicts.notMatchingAnUpload} matching no upload`,
      `latency upload → verdict p50/p95/p99: ${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.p99} ms`,
      `event-loop lag of visq (per 2 s scrape; an idle loop reads 10 ms, the monitor's interval): p99 max ${r.eventLoopLagMs.p99Max} ms, p99 median ${r.eventLoopLagMs.p99Median} ms, mean max ${r.eventLoopLagMs.meanMax} ms`,
      `resident memory: start ${r.residentMemoryMb.start} MB (after ${start.verdicts} verdicts), middle ${r.residentMemoryMb.middle} MB, end ${r.residentMemoryMb.end} MB; max ${r.residentMemoryMb.max} MB; second half ${r.residentMemoryMb.secondHalfMin}–${r.residentMemoryMb.secondHalfMax} MB; middle → end ${r.residentMemoryMb.growthMiddleToEndPercent} %`,
      `heap used: start ${r.heapUsedMb.start} MB, middle ${r.heapUsedMb.middle} MB, end ${r.heapUsedMb.end} MB`,
      ...lost.slice(0, 10).map((l) => `lost: ${l}`),
      ok ? 'OK: every accepted upload has its verdict at the MQTT client' : `FAILED: ${accepted.size - received.length} accepted upload(s) without a verdict, ${lost.length} lost upload(s)`,
    ].join('\n'));
    if (args.json) process.stdout.write(`${JSON.stringify({ ...result, ok }, null, 2)}\n`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    await visq.stop();
  }
}

await main();
