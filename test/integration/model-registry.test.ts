import { readdirSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadRegistry, ModelLoadError } from '../../src/inference/model-registry.js';
import { cli, cliJson, createTestDatabase, fixture, MesClient, postImage, repoRoot, startVisq, testEnv } from '../support/visq.js';

/** The registry refuses broken models with a message naming the folder and the mismatch. */
const shipped = path.join(repoRoot, 'models', 'surface-anomaly');
let dir: string;

beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'visq-models-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

async function modelCopy(name: string, edit: (manifest: any) => void = () => {}): Promise<string> {
  const registry = path.join(dir, name);
  const folder = path.join(registry, 'm');
  await cp(shipped, folder, { recursive: true });
  const manifest = JSON.parse(await readFile(path.join(folder, 'model.json'), 'utf8'));
  edit(manifest);
  await writeFile(path.join(folder, 'model.json'), JSON.stringify(manifest));
  return registry;
}

describe('loading the model registry', () => {
  it('loads the shipped model', async () => {
    const registry = await loadRegistry(path.join(repoRoot, 'models'));
    expect(registry.get('surface-anomaly')?.manifest.measures).toContain('anomaly_score');
  });

  it.each([
    ['a file that does not match its sha256', (m: any) => { m.sha256 = '0'.repeat(64); }, /has sha256 [0-9a-f]{64}, but model.json says 0{64}/],
    ['an output the graph does not have', (m: any) => { m.outputs.map = 'heatmap'; }, /no output "heatmap"/],
    ['an input the graph does not have', (m: any) => { m.input.name = 'images'; }, /no input "images"/],
    ['an input size the graph does not take', (m: any) => { m.input.width = 640; }, /input "input" has shape .* but model.json describes/],
    ['an unknown task', (m: any) => { m.task = 'telepathy'; }, /invalid model.json: task/],
    ['a missing model card', (m: any) => { delete m.card; }, /invalid model.json: card/],
  ])('refuses %s', async (_name, edit, message) => {
    const registry = await modelCopy(`case-${Math.random()}`, edit);
    const err = await loadRegistry(registry).catch((e) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect(err.message).toMatch(message);
    expect(err.message).toContain(path.join(registry, 'm'));
  });

  it('refuses a manifest that is not JSON, and two models with one id', async () => {
    const registry = await modelCopy('not-json');
    await writeFile(path.join(registry, 'm', 'model.json'), '{ nope');
    await expect(loadRegistry(registry)).rejects.toThrow(/cannot read model.json/);
    const twice = await modelCopy('twice');
    await cp(path.join(twice, 'm'), path.join(twice, 'n'), { recursive: true });
    await expect(loadRegistry(twice)).rejects.toThrow(/model id "surface-anomaly" is used by both/);
  });

  it('visq start refuses to serve with a broken model, exiting 1 with the reason', async () => {
    const registry = await modelCopy('start', (m) => { m.outputs.score = 'nope'; });
    const r = await cli(['start'], { VISQ_MODELS_DIR: registry, DATABASE_URL: 'postgres://127.0.0.1:1/none', MQTT_URL: 'mqtt://127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model registry: .*no output "nope"/);
  });
});

describe('a plan that names several models', () => {
  it('runs each model on each image and records every model used', async () => {
    const registry = await modelCopy('two');
    await cp(shipped, path.join(registry, 'second'), { recursive: true });
    const manifestPath = path.join(registry, 'second', 'model.json');
    const second = JSON.parse(await readFile(manifestPath, 'utf8'));
    second.id = 'surface-anomaly-b';
    second.version = '9.9.9';
    await writeFile(manifestPath, JSON.stringify(second));

    const database = await createTestDatabase(inject('postgresAdminUrl'));
    const { env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), redisUrl: inject('redisUrl'), extra: { VISQ_MODELS_DIR: registry } });
    const visq = await startVisq('start', env);
    try {
      const { apiKey } = await cliJson(['station', 'add', 'cam-2', '--line', 'l1'], env);
      const plan = path.join(env.VISQ_DATA_DIR!, 'plan.json');
      await writeFile(plan, JSON.stringify({ partNumber: 'PN-2M', characteristics: [
        { name: 'a', model: 'surface-anomaly', measure: 'anomaly_score', usl: 0.5 },
        { name: 'b', model: 'surface-anomaly-b', measure: 'anomaly_score', usl: 0.5 },
      ] }));
      await cliJson(['plan', 'apply', plan], env);
      const mes = await MesClient.connect(inject('mqttUrl'), [`${env.VISQ_TOPIC_PREFIX}/+/+/+/verdict`]);
      const good = fixture('images', 'machined-surface', 'good');
      const png = await readFile(path.join(good, readdirSync(good).filter((f) => f.endsWith('.png')).sort()[0]!));
      const res = await postImage(visq.baseUrl, apiKey, [{ bytes: png }, { bytes: png }], { serial: 'SN-2M', partNumber: 'PN-2M', lotId: 'L' });
      expect(res.status).toBe(202);
      const [v] = await mes.waitForVerdicts(1);
      const shippedVersion = JSON.parse(await readFile(path.join(shipped, 'model.json'), 'utf8')).version;
      expect(v.models.map((m: any) => `${m.id}@${m.version}`).sort()).toEqual([`surface-anomaly@${shippedVersion}`, 'surface-anomaly-b@9.9.9'].sort());
      expect(v.characteristics.map((c: any) => c.name)).toEqual(['a', 'b']);
      // The same bytes through the same graph give the same value, whichever model id carries it.
      expect(v.characteristics[0].value).toBeCloseTo(v.characteristics[1].value, 6);
      expect(v.overlays).toHaveLength(4);
      await mes.end();
    } finally {
      await visq.stop();
      await database.drop();
      await cleanup();
    }
  });
});
