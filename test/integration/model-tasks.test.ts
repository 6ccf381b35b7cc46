import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { taskMeasures } from '../../src/inference/manifest.js';
import { assertApiResponse, assertVerdictMessage } from '../support/contract.js';
import { classifierModel, probabilityMaskModel, segmentationModel, writeModelFolder, yoloModel } from '../support/onnx-models.js';
import { cli, cliJson, createTestDatabase, getJson, MesClient, postImage, repoRoot, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * "Bring their own ONNX": a registry of models of every task — the shipped anomaly model and
 * fixture graphs in the real layouts of YOLO, classifier and segmentation exports — one plan using
 * measures of all of them, real images from a camera, verdicts on MQTT with values and overlays.
 */
let registry: string;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let mes: MesClient;
let apiKey: string;
let reviewer: string;

const solid = (r: number, g: number, b: number) =>
  sharp({ create: { width: 128, height: 64, channels: 3, background: { r, g, b } } }).png().toBuffer();

/** 128×64, left half red, right half black. */
async function halfRed(): Promise<Buffer> {
  const raw = Buffer.alloc(128 * 64 * 3);
  for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) raw[(y * 128 + x) * 3] = 255;
  return sharp(raw, { raw: { width: 128, height: 64, channels: 3 } }).png().toBuffer();
}

const plan = {
  partNumber: 'PN-BYO',
  characteristics: [
    { name: 'surface', model: 'surface-anomaly', measure: 'anomaly_score', usl: 1 },
    { name: 'scratch_conf', model: 'yolo-fixture', measure: 'max_conf:scratch', usl: 0.5, guardBand: 0.1 },
    { name: 'scratch_count', model: 'yolo-fixture', measure: 'count:scratch', usl: 1 },
    { name: 'dent_count', model: 'yolo-fixture', measure: 'count:dent', usl: 2 },
    { name: 'dent_conf', model: 'yolo-fixture', measure: 'max_conf:dent', usl: 0.8 },
    { name: 'dent_area', model: 'yolo-fixture', measure: 'max_area_px:dent', usl: 2000 },
    { name: 'cls_scratch', model: 'classifier-fixture', measure: 'prob:scratch', usl: 0.99 },
    { name: 'cls_top', model: 'classifier-fixture', measure: 'top_label', lsl: 0, usl: 2 },
    { name: 'seg_scratch', model: 'segmentation-fixture', measure: 'area_px:scratch', usl: 5000, guardBand: 1000 },
    { name: 'seg_stain', model: 'segmentation-fixture', measure: 'area_px:stain', usl: 100 },
    { name: 'mask_defect', model: 'mask-fixture', measure: 'area_px:defect', usl: 5000, guardBand: 1000 },
  ],
};

const softmax = (xs: number[]) => { const e = xs.map(Math.exp); const s = e.reduce((a, b) => a + b); return e.map((v) => v / s); };

beforeAll(async () => {
  registry = await mkdtemp(path.join(os.tmpdir(), 'visq-byo-models-'));
  await cp(path.join(repoRoot, 'models', 'surface-anomaly'), path.join(registry, 'surface-anomaly'), { recursive: true });
  await writeModelFolder(path.join(registry, 'yolo'), yoloModel());
  await writeModelFolder(path.join(registry, 'classifier'), classifierModel());
  await writeModelFolder(path.join(registry, 'segmentation'), segmentationModel());
  await writeModelFolder(path.join(registry, 'mask'), probabilityMaskModel());

  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl'), extra: { VISQ_MODELS_DIR: registry } }));
  visq = await startVisq('start', env);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-byo', '--line', 'line-b'], env));
  ({ token: reviewer } = await cliJson(['user', 'add', 'rita', '--role', 'reviewer'], env));
  const planFile = path.join(env.VISQ_DATA_DIR!, 'plan.json');
  await writeFile(planFile, JSON.stringify(plan));
  expect(await cliJson(['plan', 'apply', planFile], env)).toMatchObject({ partNumber: 'PN-BYO', version: 1 });
  mes = await MesClient.connect(inject('mqttUrl'), [`${env.VISQ_TOPIC_PREFIX}/+/+/+/verdict`]);
});

afterAll(async () => {
  await visq?.stop();
  await mes?.end();
  await database?.drop();
  await cleanup?.();
  await rm(registry, { recursive: true, force: true });
});

const image = async (sha: string, contentType = /^image\/png/) => {
  const res = await fetch(`${visq.baseUrl}/v1/images/${sha}`, { headers: { authorization: `Bearer ${reviewer}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(contentType);
  return Buffer.from(await res.arrayBuffer());
};

describe('a plan over anomaly, detection, classification and segmentation models', () => {
  it('measures every posted image with every model and sends verdicts with values and overlays', async () => {
    const parts = [
      { serial: 'SN-YELLOW', bytes: await solid(255, 255, 0) },
      { serial: 'SN-HALFRED', bytes: await halfRed() },
      { serial: 'SN-GREY', bytes: await solid(50, 50, 50) },
    ];
    const ids: Record<string, string> = {};
    for (const p of parts) {
      const res = await postImage(visq.baseUrl, apiKey, [{ bytes: p.bytes }], { serial: p.serial, partNumber: 'PN-BYO', lotId: 'LOT-BYO' });
      expect(res.status).toBe(202);
      ids[p.serial] = res.body.id;
    }
    const verdicts = await mes.waitForVerdicts(3, 60_000);
    const bySerial = Object.fromEntries(verdicts.map((v) => [v.serial, v]));
    for (const v of verdicts) {
      assertVerdictMessage(v);
      expect(v.reason).toBeNull();
      expect(v.models.map((m: any) => m.id).sort()).toEqual(['classifier-fixture', 'mask-fixture', 'segmentation-fixture', 'surface-anomaly', 'yolo-fixture']);
      expect(v.overlays.map((o: any) => `${o.view} ${o.model} ${o.kind}`).sort()).toEqual([
        '0 mask-fixture mask', '0 segmentation-fixture mask', '0 surface-anomaly anomaly_map', '0 yolo-fixture boxes',
      ]);
    }
    const values = (serial: string) => Object.fromEntries(bySerial[serial].characteristics.map((c: any) => [c.name, c.value]));
    const results = (serial: string) => Object.fromEntries(bySerial[serial].characteristics.map((c: any) => [c.name, c.result]));

    // Yellow: both detector classes at the same place (class-wise NMS keeps both; the overlapping
    // scratch box is suppressed), the tall dent box clipped to the image; classifier logits [0, 4, 0].
    const yellow = values('SN-YELLOW');
    expect(yellow.scratch_conf).toBeCloseTo(0.9, 5);
    expect(yellow.scratch_count).toBe(1);
    expect(yellow.dent_count).toBe(2);
    expect(yellow.dent_conf).toBeCloseTo(0.7, 5);
    expect(yellow.dent_area).toBe(24 * 64);
    expect(yellow.cls_scratch).toBeCloseTo(softmax([0, 4, 0])[1]!, 5);
    expect(yellow.cls_top).toBe(1);
    expect([yellow.seg_scratch, yellow.seg_stain, yellow.mask_defect]).toEqual([0, 0, 0]);
    expect(bySerial['SN-YELLOW'].verdict).toBe('FAIL');
    expect(results('SN-YELLOW')).toMatchObject({ scratch_conf: 'fail', dent_count: 'pass', dent_area: 'pass', cls_scratch: 'pass' });

    // Half red: red pixels are scratch for the segmentation nets: 64×64 of the 128×64 original pixels.
    const half = values('SN-HALFRED');
    expect(half.scratch_conf).toBeCloseTo(0.45, 2);
    expect([half.dent_count, half.dent_conf, half.dent_area]).toEqual([0, 0, 0]);
    expect(half.cls_scratch).toBeCloseTo(softmax([0, 2, 0])[1]!, 2);
    expect(half.seg_scratch).toBe(64 * 64);
    expect(half.seg_stain).toBe(0);
    expect(half.mask_defect).toBe(64 * 64);
    expect(bySerial['SN-HALFRED'].verdict).toBe('REVIEW');
    expect(results('SN-HALFRED')).toMatchObject({ scratch_conf: 'review', seg_scratch: 'review', mask_defect: 'review' });

    // Dark grey: nothing found anywhere.
    const grey = values('SN-GREY');
    expect([grey.scratch_count, grey.scratch_conf, grey.dent_count, grey.seg_scratch, grey.mask_defect]).toEqual([0, 0, 0, 0, 0]);
    expect(grey.cls_top).toBe(1); // scratch and stain tie: the first
    expect(bySerial['SN-GREY'].verdict).toBe('PASS');

    // The overlays are kept for people: boxes in original-image pixels, masks at the output resolution.
    const overlay = (serial: string, model: string) => bySerial[serial].overlays.find((o: any) => o.model === model).sha256;
    const boxes = JSON.parse((await image(overlay('SN-YELLOW', 'yolo-fixture'), /^application\/json/)).toString('utf8'));
    expect(boxes.width).toBe(128);
    expect(boxes.height).toBe(64);
    expect(boxes.boxes.map((b: any) => [b.label, Math.round(b.confidence * 10) / 10, b.x, b.y, b.w, b.h])).toEqual([
      ['scratch', 0.9, 16, 16, 32, 32],
      ['dent', 0.7, 16, 16, 32, 32],
      ['dent', 0.3, 84, 0, 24, 64],
    ]);
    expect(JSON.parse((await image(overlay('SN-GREY', 'yolo-fixture'), /^application\/json/)).toString('utf8'))).toEqual({ width: 128, height: 64, boxes: [] });

    for (const [model, value] of [['segmentation-fixture', 128], ['mask-fixture', 255]] as const) {
      const png = await image(overlay('SN-HALFRED', model));
      const meta = await sharp(png).metadata();
      expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', 32, 32, 1]);
      const { data } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      for (const y of [0, 15, 31]) {
        expect(data[y * 32 + 2]).toBe(value);
        expect(data[y * 32 + 29]).toBe(0);
      }
    }

    // The inspection document lists the same overlays.
    const doc = await getJson(`${visq.baseUrl}/v1/inspections/${ids['SN-YELLOW']}`, reviewer);
    expect(doc.status).toBe(200);
    assertApiResponse('/v1/inspections/{id}', 'get', 200, doc.body);
    expect(doc.body.overlays).toEqual(expect.arrayContaining(bySerial['SN-YELLOW'].overlays));
    expect(doc.body.overlays).toHaveLength(4);
  });

  it('refuses a plan naming a measure the model does not yield', async () => {
    const bad = path.join(env.VISQ_DATA_DIR!, 'bad-plan.json');
    await writeFile(bad, JSON.stringify({ partNumber: 'PN-BAD', characteristics: [{ name: 'c', model: 'classifier-fixture', measure: 'prob:crack', usl: 0.5 }] }));
    const r = await cli(['plan', 'apply', bad], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model "classifier-fixture" yields "prob:ok", "prob:scratch", "prob:stain", "top_label", not "prob:crack"/);
  });
});

describe('a manifest that does not match its graph', () => {
  it('stops visq start with exit 1, naming the folder and the mismatch', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'visq-byo-bad-'));
    try {
      const labels = ['scratch', 'dent', 'crack'];
      const model = yoloModel();
      await writeModelFolder(path.join(dir, 'yolo'), { ...model, manifest: { ...model.manifest, labels, measures: taskMeasures({ task: 'detection', labels }) } });
      const r = await cli(['start'], { VISQ_MODELS_DIR: dir, DATABASE_URL: 'postgres://127.0.0.1:1/none', MQTT_URL: 'mqtt://127.0.0.1:1' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(path.join(dir, 'yolo'));
      expect(r.stderr).toMatch(/model registry: .*output "output0" has shape \[1, 6, 4\]: 4 box values \+ 2 classes in the graph, but model.json has 3 labels \(scratch, dent, crack\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
