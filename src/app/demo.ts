import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { validateQualityPlan } from '../quality/quality-plan.js';
import { measureCatalog } from '../inference/model-registry.js';
import { runAll, Runtime } from './runtime.js';
import { storePlanVersion } from '../db/quality-plans.js';
import { addStation, findStationContext } from '../db/stations.js';
import { addUser } from '../db/users.js';
import type { VerdictMessage } from '../inspection/inspection-document.js';

const packageRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixtureDir = path.join(packageRoot, 'fixtures', 'images', 'machined-surface');

/** A demo lot of fixture images, posted as a camera would, with the MES's view of the result printed. */
export async function runDemo(imageCount: number): Promise<void> {
  const tempDir = await mkdtemp(path.join(os.tmpdir(), 'visq-demo-'));
  // As root, the embedded PostgreSQL runs as another account: let it keep its cluster in here.
  await chmod(tempDir, 0o711);
  const env = { ...process.env };
  // A demo never collides with services already running: its own data, free ports.
  env.VISQ_DATA_DIR ??= tempDir;
  env.VISQ_EMBEDDED_PG_PORT ??= '0';
  env.VISQ_EMBEDDED_MQTT_PORT ??= '0';
  env.VISQ_HTTP_PORT ??= '0';
  env.VISQ_HTTP_HOST ??= '127.0.0.1';
  env.VISQ_MODELS_DIR ??= path.join(packageRoot, 'models');
  const config = loadConfig(env);
  const rt = new Runtime(config, createLogger(process.env.VISQ_LOG_LEVEL ?? 'warn', { component: 'demo' }, 2), createMetrics());
  const print = (line = '') => process.stdout.write(`${line}\n`);
  try {
    print('visq demo: starting the pipeline on embedded defaults…');
    const { port, db, registry, mqttUrl } = await runAll(rt);
    const base = `http://127.0.0.1:${port}`;

    const suffix = Math.random().toString(36).slice(2, 6);
    const stationId = `demo-cam-${suffix}`;
    const { apiKey } = await addStation(db, 'demo', stationId, config.site, 'line-1');
    const { token } = await addUser(db, 'demo', { username: `demo-reviewer-${suffix}`, role: 'reviewer', fullName: 'Demo Reviewer', passwordHash: null, integration: true, tokenDays: 1 });
    const planDoc = JSON.parse(await readFile(path.join(packageRoot, 'fixtures', 'plans', 'PN-1001.json'), 'utf8'));
    const checked = validateQualityPlan(planDoc, measureCatalog(registry));
    if (!checked.ok) throw new Error(`demo plan invalid: ${checked.problems.join('; ')}`);
    const plan = await storePlanVersion(db, checked.plan, 'demo', 'demo lot');

    // The MES: listens for verdicts and tells the station its current job (retained context).
    const mes = await mqtt.connectAsync(mqttUrl, { clientId: `demo-mes-${suffix}` });
    const prefix = `${config.topicPrefix}/${config.site}/line-1/${stationId}`;
    const received: VerdictMessage[] = [];
    let notify: () => void = () => {};
    mes.on('message', (_topic, payload) => { received.push(JSON.parse(payload.toString())); notify(); });
    await mes.subscribeAsync(`${prefix}/verdict`, { qos: 1 });
    const lotId = `DEMO-LOT-${suffix.toUpperCase()}`;
    await mes.publishAsync(`${prefix}/context`, JSON.stringify({ partNumber: 'PN-1001', lotId, workOrder: 'WO-4711', operation: null }), { qos: 1, retain: true });
    await waitFor(async () => (await findStationContext(db, stationId)) !== null, 10_000, 'the MES context to arrive');

    const images = await demoImages(imageCount);
    print(`Station ${stationId} (site ${config.site}, line-1) posts ${images.length} parts of PN-1001, lot ${lotId} from the MES context; plan version ${plan.version}.`);
    const posted = new Map<string, { serial: string; file: string; expected: string }>();
    for (const [i, img] of images.entries()) {
      const serial = `SN-${String(i + 1).padStart(4, '0')}`;
      const form = new FormData();
      form.append('image', new Blob([new Uint8Array(await readFile(img.file))], { type: 'image/png' }), path.basename(img.file));
      form.append('serial', serial);
      const res = await fetch(`${base}/v1/inspections`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'idempotency-key': `${stationId}-${serial}` }, body: form });
      if (res.status !== 202) throw new Error(`upload ${serial} answered ${res.status}: ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      posted.set(id, { serial, file: path.relative(fixtureDir, img.file), expected: img.expected });
    }
    await waitFor(async () => received.length >= posted.size, 120_000, 'all verdicts to reach the MES', (r) => { notify = r; });

    print();
    print(`${'serial'.padEnd(9)} ${'image'.padEnd(28)} ${'fixture'.padEnd(9)} ${'verdict'.padEnd(7)} ${'anomaly_score'.padStart(13)}  ${'decided in'.padStart(10)}`);
    for (const m of received) {
      const p = posted.get(m.id)!;
      const score = m.characteristics[0]?.value;
      print(`${p.serial.padEnd(9)} ${p.file.padEnd(28)} ${p.expected.padEnd(9)} ${String(m.verdict).padEnd(7)} ${(score === null || score === undefined ? '—' : score.toFixed(3)).padStart(13)}  ${String(Math.round(Date.parse(m.decidedAt!) - Date.parse(m.receivedAt))).padStart(7)} ms`);
    }
    const lot = await (await fetch(`${base}/v1/lots/${lotId}`, { headers: { authorization: `Bearer ${token}` } })).json() as { counts: Record<string, number> };
    print();
    print(`Lot ${lotId} (GET /v1/lots): PASS ${lot.counts.PASS}, FAIL ${lot.counts.FAIL}, REVIEW ${lot.counts.REVIEW}, pending ${lot.counts.pending}`);
    print(`The MES received ${received.length} verdict messages on ${prefix}/verdict (QoS 1), each with lot, serial, work order, station, image sha256, model and plan version.`);

    const review = received.find((m) => m.verdict === 'REVIEW');
    if (review) {
      const res = await fetch(`${base}/v1/inspections/${review.id}/disposition`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ decision: 'accept', reason: 'demo: cosmetic, within customer limits' }),
      });
      if (res.status !== 200) throw new Error(`disposition answered ${res.status}: ${await res.text()}`);
      await waitFor(async () => received.some((m) => m.final && m.id === review.id), 10_000, 'the final verdict', (r) => { notify = r; });
      const final = received.find((m) => m.final && m.id === review.id)!;
      print(`A reviewer accepted ${posted.get(review.id)!.serial}: the MES received final verdict ${final.verdict} superseding message ${final.supersedes}.`);
    }
    const example = received[0]!;
    print();
    print('One verdict message as the MES received it:');
    print(JSON.stringify(example, null, 2));
    print();
    print('To review parts in the workbench: `npx visq start`, add a reviewer with a password');
    print("(`npx visq user add rita --role reviewer --password-stdin <<< 'a long passphrase'`), open http://localhost:8080/.");
    await mes.endAsync();
  } finally {
    await rt.stop();
    await rm(tempDir, { recursive: true, force: true });
  }
}

async function demoImages(count: number): Promise<{ file: string; expected: string }[]> {
  const list = async (dir: string) => (await readdir(dir)).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort().map((f) => path.join(dir, f));
  const good = (await list(path.join(fixtureDir, 'good'))).map((file) => ({ file, expected: 'good' }));
  const defects = (await readdir(path.join(fixtureDir, 'bad'))).sort();
  const bad = (await Promise.all(defects.map(async (d) => (await list(path.join(fixtureDir, 'bad', d))).map((file) => ({ file, expected: d }))))).flat();
  // Interleave good and defective parts, as a real lot would mix them.
  const mixed: { file: string; expected: string }[] = [];
  for (let i = 0; mixed.length < count && (i < good.length || i < bad.length); i++) {
    if (good[i]) mixed.push(good[i]!);
    if (bad[i] && mixed.length < count) mixed.push(bad[i]!);
  }
  return mixed.slice(0, count);
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string, onWake?: (wake: () => void) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((resolve) => { onWake?.(resolve); setTimeout(resolve, 100); });
  }
}
