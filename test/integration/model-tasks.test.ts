import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { assertApiResponse, assertVerdictMessage } from '../support/contract.js';
import { classifierModel, probabilityMaskModel, rawScoreAnomalyModel, segmentationModel, writeModelFolder, yoloModel, yoloSegModel } from '../support/onnx-models.js';
import { until } from '../support/services.js';
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
  await writeModelFolder(path.join(registry, 'yolo-seg'), yoloSegModel());
  await writeModelFolder(path.join(registry, 'raw-score'), rawScoreAnomalyModel());
  await cp(path.join(repoRoot, 'models', 'backbones', 'mobilenetv2-12-int8'), path.join(registry, 'imagenet'), { recursive: true });

  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl'), extra: { VISQ_MODELS_DIR: registry } }));
  visq = await startVisq('start', env);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-byo', '--line', 'line-b'], env));
  ({ token: reviewer } = await cliJson(['user', 'add', 'rita', '--role', 'reviewer', '--integration'], env));
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
    // (and whether the retention policy removed each: not yet).
    expect(doc.body.overlays).toEqual(expect.arrayContaining(bySerial['SN-YELLOW'].overlays.map((o: any) => ({ ...o, removed: null }))));
    expect(doc.body.overlays).toHaveLength(4);
  });

  it('refuses a plan naming a measure the model does not yield', async () => {
    const bad = path.join(env.VISQ_DATA_DIR!, 'bad-plan.json');
    await writeFile(bad, JSON.stringify({ partNumber: 'PN-BAD', characteristics: [{ name: 'c', model: 'classifier-fixture', measure: 'prob:crack', usl: 0.5 }] }));
    const r = await cli(['plan', 'apply', bad], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model "classifier-fixture" has no measure "prob:crack" .*; it yields "prob:ok", "prob:scratch", "prob:stain", "top_label"/);
  });
});

describe('models brought by the user, as their makers’ tools run them', () => {
  const reference = (name: string) => readFile(path.join(repoRoot, 'fixtures', 'reference', name));
  const planOf = async (partNumber: string, characteristics: unknown[]) => {
    const file = path.join(env.VISQ_DATA_DIR!, `${partNumber}.json`);
    await writeFile(file, JSON.stringify({ partNumber, characteristics }));
    const r = await cli(['plan', 'apply', file], env);
    expect(r.code, r.stderr).toBe(0);
    return r;
  };
  const inspect = async (partNumber: string, serial: string, bytes: Buffer) => {
    const res = await postImage(visq.baseUrl, apiKey, [{ bytes }], { serial, partNumber, lotId: `LOT-${partNumber}` });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    await until(() => mes.verdicts().some((v) => v.id === res.body.id), `the verdict of ${serial}`, 30_000);
    return mes.verdicts().find((v) => v.id === res.body.id);
  };

  it('an ImageNet classifier from the model zoo, fed as torchvision feeds it; a photo saved sideways is seen upright', async () => {
    await planOf('PN-CAT', [{ name: 'cat', model: 'imagenet-mobilenetv2', measure: 'prob:Egyptian cat', lsl: 0.5 }]);
    const upright = await inspect('PN-CAT', 'SN-UPRIGHT', await reference('cat.jpg'));
    // The photo rotated in its pixels and saved with EXIF orientation 6, and Pillow's upright decoding of that file.
    const sideways = await inspect('PN-CAT', 'SN-SIDEWAYS', await reference('cat-exif6.jpg'));
    const decodedUpright = await inspect('PN-CAT', 'SN-DECODED', await reference('cat-exif6-upright.png'));
    // As torchvision's Resize(256) + CenterCrop(224) gives (test/unit/backbone.test.ts).
    expect(upright.characteristics[0].value).toBeCloseTo(0.7637, 3);
    expect(sideways.characteristics[0].value).toBeCloseTo(decodedUpright.characteristics[0].value, 4);
    expect([upright.verdict, sideways.verdict]).toEqual(['PASS', 'PASS']);
    const doc = await getJson(`${visq.baseUrl}/v1/inspections/${sideways.id}`, reviewer);
    assertApiResponse('/v1/inspections/{id}', 'get', 200, doc.body);
    expect(doc.body.images[0]).toMatchObject({ width: 451, height: 300, exifOrientation: 6 });
    expect((await getJson(`${visq.baseUrl}/v1/inspections/${upright.id}`, reviewer)).body.images[0]).toMatchObject({ width: 451, height: 300, exifOrientation: 1 });
  });

  it('an Ultralytics -seg export: instances counted and their masks measured as Ultralytics does', async () => {
    await planOf('PN-SEG', [
      { name: 'scratches', model: 'yolo-seg-fixture', measure: 'count:scratch', usl: 0 },
      { name: 'scratch_area', model: 'yolo-seg-fixture', measure: 'area_px:scratch', usl: 1000 },
      { name: 'dent_area', model: 'yolo-seg-fixture', measure: 'area_px:dent', usl: 1000 },
    ]);
    const white = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 255, g: 255, b: 255 } } }).png().toBuffer();
    const v = await inspect('PN-SEG', 'SN-SEG', white);
    expect(Object.fromEntries(v.characteristics.map((c: any) => [c.name, c.value]))).toEqual({ scratches: 1, scratch_area: 720, dent_area: 352 });
    expect(v.verdict).toBe('FAIL');
    expect(v.overlays.map((o: any) => o.kind).sort()).toEqual(['boxes', 'mask']);
  });

  it('a score outside the range its model promises is not trusted: REVIEW, saying why', async () => {
    await planOf('PN-RAW', [{ name: 'surface', model: 'raw-score-fixture', measure: 'anomaly_score', usl: 0.5 }]);
    const v = await inspect('PN-RAW', 'SN-RAW', await solid(50, 50, 50));
    expect(v.verdict).toBe('REVIEW');
    expect(v.characteristics[0]).toMatchObject({ result: 'review', value: expect.closeTo(3 * (50 / 255) - 2, 4) });
    expect(v.characteristics[0].problem).toMatch(/anomaly_score = -1\.41\d* is outside \[0, 1\], the range this model promises/);
    expect(v.reason).toMatch(/surface: model "raw-score-fixture", image 0: anomaly_score/);
    // A bright part gives a score inside the range: judged as usual.
    expect((await inspect('PN-RAW', 'SN-RAW-2', await solid(250, 250, 250))).verdict).toBe('FAIL');
  });

  it('visq model check says what the registry will do with a folder and what a plan can use', async () => {
    const r = await cli(['model', 'check', path.join(registry, 'imagenet')], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/usable — imagenet-mobilenetv2 1\.0\.0, task classification/);
    expect(r.stdout).toMatch(/center-crop \(shorter side 256\), bilinear-antialias resampling/);
    expect(r.stdout).toMatch(/measures a quality plan can use \(1001\):/);
    expect(r.stdout).toMatch(/prob:tabby +0 … 1 +probability of "tabby"/);
    expect(r.stdout).toMatch(/top_label +0 … 999 \(whole numbers\)/);
    const json = JSON.parse((await cli(['model', 'check', path.join(registry, 'yolo-seg'), '--json'], env)).stdout);
    expect(json).toMatchObject({ ok: true, task: 'instance-segmentation', dryRun: { outputs: { output0: [1, 7, 4], output1: [1, 1, 16, 16] } } });
    const broken = await cli(['model', 'check', repoRoot], env);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/cannot read model.json/);
  });

  it('visq plan apply warns when no running worker has the model the plan names', async () => {
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'visq-other-registry-'));
    try {
      await writeModelFolder(path.join(elsewhere, 'new-model'), classifierModel('new-model'));
      const file = path.join(env.VISQ_DATA_DIR!, 'PN-NEW.json');
      await writeFile(file, JSON.stringify({ partNumber: 'PN-NEW', characteristics: [{ name: 'c', model: 'new-model', measure: 'prob:scratch', usl: 0.5 }] }));
      const r = await cli(['plan', 'apply', file], { ...env, VISQ_MODELS_DIR: elsewhere });
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/warning: model "new-model" is not loaded by any running worker \(1 running; they have "classifier-fixture", .*\): inspections of PN-NEW are decided REVIEW until workers with it are started/);
      // A plan whose models the workers have draws no warning.
      expect((await planOf('PN-CAT', [{ name: 'cat', model: 'imagenet-mobilenetv2', measure: 'prob:tabby', lsl: 0.5 }])).stderr).not.toMatch(/warning/);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('a manifest that does not match its graph', () => {
  it('stops visq start with exit 1, naming the folder and the mismatch', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'visq-byo-bad-'));
    try {
      const labels = ['scratch', 'dent', 'crack'];
      const model = yoloModel();
      await writeModelFolder(path.join(dir, 'yolo'), { ...model, manifest: { ...model.manifest, labels, measures: undefined } });
      const r = await cli(['start'], { VISQ_MODELS_DIR: dir, DATABASE_URL: 'postgres://127.0.0.1:1/none', MQTT_URL: 'mqtt://127.0.0.1:1' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(path.join(dir, 'yolo'));
      expect(r.stderr).toMatch(/model registry: .*output "output0" has shape \[1, 6, 4\]: 4 box values \+ 2 classes in the graph, but model.json has 3 labels \("scratch", "dent", "crack"\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
