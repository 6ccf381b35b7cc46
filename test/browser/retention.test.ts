import { readdirSync, readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchChromium, signIn } from '../support/browser.js';
import { withPngComment } from '../support/images.js';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * Retention in the workbench, in Chromium: a reviewer keeps an image with "Keep this image", and an
 * image the retention policy removed shows a placeholder saying when and why, as the API does.
 */
const good = readdirSync(fixture('images', 'machined-surface', 'good')).filter((f) => f.endsWith('.png')).sort()
  .map((f) => readFileSync(fixture('images', 'machined-surface', 'good', f)));

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let browser: Browser;
let apiKey: string;
let token: string;
const password = 'rita-keeps-evidence-9';

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({
    databaseUrl: database.url, mqttUrl: inject('mqttUrl'),
    extra: { VISQ_STORAGE_QUOTA: '1500kB', VISQ_STORAGE_MIN_FREE: '1MB', VISQ_RETAIN_PASS_MIN_AGE: '0', VISQ_RETAIN_OVERLAY_MIN_AGE: '0' },
  }));
  expect((await cli(['migrate'], env)).code).toBe(0);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-b', '--line', 'line-b'], env));
  const added = await cli(['user', 'add', 'rita', '--role', 'reviewer', '--name', 'Rita Reviewer', '--password-stdin'], env, `${password}\n`);
  expect(added.code, added.stderr).toBe(0);
  ({ token } = JSON.parse(added.stdout));
  expect((await cli(['plan', 'apply', fixture('plans', 'PN-1001.json')], env)).code).toBe(0);
  visq = await startVisq('start', env);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await visq?.stop();
  await database?.drop();
  await cleanup?.();
});

let sent = 0;
/** A PASS part (a camera retrying a 507 until the pruner made room); its decided document. */
async function passPart(): Promise<any> {
  const i = sent++;
  const bytes = withPngComment(good[i % good.length]!, `browser ${i}`);
  let id: string | undefined;
  await until(async () => {
    const r = await postImage(visq.baseUrl, apiKey, [{ bytes }], { serial: `SN-B-${i}`, partNumber: 'PN-1001', lotId: 'LOT-B' }, { 'idempotency-key': `b-${i}` });
    if (r.status === 202) id = r.body.id;
    else expect(r.status, JSON.stringify(r.body)).toBe(507);
    return id !== undefined;
  }, `part ${i} accepted`, 30_000, 200);
  let doc: any;
  await until(async () => (doc = (await getJson(`${visq.baseUrl}/v1/inspections/${id}`, token)).body).status === 'done', `part ${i} decided`, 30_000, 25);
  return doc;
}

describe('retention in the workbench', () => {
  it('"Keep this image" pins an image against the policy; a removed image shows when and why in place of the picture', async () => {
    const first = await passPart();
    const kept = await passPart();
    const page = await signIn(browser, visq.baseUrl, 'rita', password, 'Rita Reviewer');

    await page.goto(`${visq.baseUrl}/#/inspections/${kept.id}`);
    await page.getByTestId('inspection-image').waitFor();
    await page.getByTestId('keep-image').click();
    await page.getByLabel('Why keep it?').fill('evidence for supplier claim 17');
    await page.getByRole('button', { name: 'Pin' }).click();
    await page.getByTestId('image-pinned').getByText(/Kept: pinned by rita .* evidence for supplier claim 17/).waitFor();
    expect((await getJson(`${visq.baseUrl}/v1/inspections/${kept.id}`, token)).body.images[0].pinned).toMatchObject({ by: 'rita', reason: 'evidence for supplier claim 17' });

    // More parts than the quota holds: the oldest PASS image goes, the pinned one stays.
    let removed: any = null;
    for (let n = 0; !removed; n++) {
      if (n > 20) throw new Error('the first image was never removed');
      await passPart();
      removed = (await getJson(`${visq.baseUrl}/v1/inspections/${first.id}`, token)).body.images[0].removed;
    }
    expect((await getJson(`${visq.baseUrl}/v1/inspections/${kept.id}`, token)).body.images[0].removed).toBeNull();

    await page.goto(`${visq.baseUrl}/#/inspections/${first.id}`);
    const placeholder = page.getByTestId('image-removed');
    await placeholder.waitFor();
    const text = (await placeholder.textContent())!;
    expect(text).toContain('Image removed');
    expect(text).toContain(`by the retention policy (disk quota): ${removed.reason}.`);
    expect(text).toContain(first.images[0].sha256);
    expect(await page.getByTestId('inspection-image').count()).toBe(0);
    await page.getByTestId('image-removal').getByText(removed.reason).waitFor();
    // The API answers the same for the image itself.
    const gone = await fetch(`${visq.baseUrl}/v1/images/${first.images[0].sha256}`, { headers: { authorization: `Bearer ${token}` } });
    expect(gone.status).toBe(410);
    expect((await gone.json()).error.message).toContain(removed.reason);

    // Unpinned, the kept image is subject to the policy again.
    await page.goto(`${visq.baseUrl}/#/inspections/${kept.id}`);
    await page.getByTestId('image-pinned').getByRole('button', { name: 'Unpin' }).click();
    await page.getByTestId('keep-image').waitFor();
    expect((await getJson(`${visq.baseUrl}/v1/inspections/${kept.id}`, token)).body.images[0].pinned).toBeNull();
    expect(page.problems).toEqual([]);
    await page.context().close();
  });
});
