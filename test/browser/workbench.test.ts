import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launchChromium, signIn as signInAs } from '../support/browser.js';
import { until } from '../support/services.js';
import { cli, cliJson, createTestDatabase, fixture, getJson, MesClient, postImage, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/**
 * The review workbench in a real headless Chromium against `visq start` on real PostgreSQL and
 * Mosquitto: what a reviewer and an engineer do in a shift, and what an auditor checks.
 * With VISQ_SCREENSHOTS=<dir> it also saves the README's screenshots there.
 */
const pngs = (dir: string) => readdirSync(fixture('images', 'machined-surface', dir)).filter((f) => f.endsWith('.png')).sort()
  .map((f) => readFileSync(fixture('images', 'machined-surface', dir, f)));
const good = pngs('good');
const defects = pngs('bad/scratch');
const screenshots = process.env.VISQ_SCREENSHOTS;

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
let mes: MesClient;
let browser: Browser;
let apiKey: string;
let token: string;
const password = { rita: 'rita-signs-here-42', emil: 'emil-plans-things-7' };

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  ({ env, cleanup } = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl') }));
  expect((await cli(['migrate'], env)).code).toBe(0);
  ({ apiKey } = await cliJson(['station', 'add', 'cam-3', '--line', 'line-2'], env));
  for (const [user, role, name] of [['rita', 'reviewer', 'Rita Reviewer'], ['emil', 'engineer', 'Emil Engineer']] as const) {
    const r = await cli(['user', 'add', user, '--role', role, '--name', name, '--password-stdin'], env, `${password[user]}\n`);
    expect(r.code, r.stderr).toBe(0);
  }
  ({ token } = await cliJson(['user', 'add', 'auditor', '--role', 'reviewer'], env));
  const planFile = path.join(os.tmpdir(), `visq-browser-plan-${process.pid}.json`);
  writeFileSync(planFile, JSON.stringify({ ...JSON.parse(readFileSync(fixture('plans', 'PN-1001.json'), 'utf8')), confirmFail: true }));
  expect((await cli(['plan', 'apply', planFile, '--reason', 'first release'], env)).code).toBe(0);
  mes = await MesClient.connect(inject('mqttUrl'), [`${env.VISQ_TOPIC_PREFIX}/#`]);
  visq = await startVisq('start', env);
  browser = await launchChromium();
  // A lot with some history, so the lot view has something to chart.
  for (const [i, bytes] of good.slice(0, 6).entries()) await inspect(bytes, `SN-B-1${i}`);
});

afterAll(async () => {
  await browser?.close();
  await visq?.stop();
  await mes?.end();
  await database?.drop();
  await cleanup?.();
});

async function inspect(bytes: Buffer, serial: string): Promise<string> {
  const r = await postImage(visq.baseUrl, apiKey, [{ bytes }], { serial, partNumber: 'PN-1001', lotId: 'LOT-B1' });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.id;
}

async function decided(id: string): Promise<any> {
  let doc: any;
  await until(async () => (doc = (await getJson(`${visq.baseUrl}/v1/inspections/${id}`, token)).body).status === 'done', `inspection ${id} decided`, 30_000);
  return doc;
}

async function signIn(username: 'rita' | 'emil'): Promise<Page & { problems: string[] }> {
  return signInAs(browser, visq.baseUrl, username, password[username], username === 'rita' ? 'Rita Reviewer' : 'Emil Engineer');
}

async function shot(page: Page, name: string): Promise<void> {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: path.join(screenshots, `${name}.png`) });
}

describe('review workbench in Chromium', () => {
  it('a wrong password does not sign in', async () => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(visq.baseUrl);
    await page.getByLabel('Username').fill('rita');
    await page.getByLabel('Password').fill('not-her-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(/not correct/i).waitFor();
    expect(await page.context().cookies()).toEqual([]);
    await page.context().close();
  });

  it('a reviewer signs in, sees a flagged part arrive live, sees its heatmap, disposes with a signature, and the MES gets the final verdict', async () => {
    const page = await signIn('rita');
    await page.getByTestId('live-status').getByText('live').waitFor();
    const cookie = (await page.context().cookies())[0]!;
    expect(cookie).toMatchObject({ name: 'visq_session', httpOnly: true, sameSite: 'Strict' });

    // The camera sends a scratched part while the queue is open: it appears without a reload.
    const id = await inspect(defects[0]!, 'SN-B-900');
    const row = page.locator(`[data-testid="queue-row"][data-id="${id}"]`);
    await row.waitFor({ timeout: 30_000 });
    await shot(page, 'review-queue');
    await row.click();

    await page.getByTestId('verdict').getByText('FAIL').waitFor();
    const heatmap = page.getByTestId('overlay-heatmap');
    await heatmap.waitFor();
    // The heatmap was drawn from the anomaly map: some of its pixels are coloured.
    await until(() => heatmap.evaluate((el) => {
      const canvas = el instanceof HTMLCanvasElement ? el : el.querySelector('canvas');
      if (!canvas || canvas.width === 0) return false;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) return true;
      return false;
    }), 'heatmap pixels', 10_000);
    await page.getByLabel('Heatmap').uncheck();
    await expect(heatmap.isVisible()).resolves.toBe(false);
    await page.getByLabel('Heatmap').check();
    await page.getByTestId('characteristic-surface_anomaly').waitFor();
    await shot(page, 'inspection');

    // Keyboard: s = scrap. A wrong password signs nothing.
    await page.keyboard.press('s');
    await page.getByLabel('Reason').fill('deep scratch across the sealing face');
    await page.getByLabel('Password').fill('not-my-password');
    await page.getByRole('button', { name: 'Sign and submit' }).click();
    await page.getByText('The password is not correct').waitFor();
    expect((await getJson(`${visq.baseUrl}/v1/inspections/${id}`, token)).body.final).toBe(false);
    await page.getByLabel('Password').fill(password.rita);
    await shot(page, 'signature');
    await page.getByRole('button', { name: 'Sign and submit' }).click();

    await until(() => mes.verdicts().some((v) => v.id === id && v.final), 'the final verdict at the MES', 30_000);
    const final = mes.verdicts().find((v) => v.id === id && v.final);
    const first = mes.verdicts().find((v) => v.id === id && !v.final);
    expect(final).toMatchObject({
      verdict: 'FAIL', final: true, supersedes: first.messageId,
      disposition: { decision: 'scrap', reason: 'deep scratch across the sealing face', by: 'rita', name: 'Rita Reviewer', meaning: 'I reject this part as scrap' },
    });
    expect(page.problems).toEqual([]);
    await page.context().close();
  });

  it('the inspection view shows the disposition; the lot view shows yield, Pareto, p-chart and exports the report', async () => {
    const page = await signIn('rita');
    await page.goto(`${visq.baseUrl}/#/lots/LOT-B1`);
    await page.getByTestId('lot-yield').waitFor();
    await page.getByTestId('pareto').waitFor();
    await page.getByTestId('p-chart').waitFor();
    expect(await page.getByTestId('pareto').textContent()).toContain('surface_anomaly');
    await shot(page, 'lot');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByText('Download CSV').click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    expect(csv.split('\n')[0]).toMatch(/^inspection_id,/);
    expect(csv).toContain('Rita Reviewer');
    expect(page.problems).toEqual([]);
    await page.context().close();
  });

  it('an engineer changes a limit in the plan editor; the next inspection uses the new version; the versions show what changed', async () => {
    const page = await signIn('emil');
    await page.goto(`${visq.baseUrl}/#/plans/PN-1001`);
    const usl = page.getByTestId('plan-editor').locator('input[name="usl"]').first();
    await usl.waitFor();
    await usl.fill('abc');
    await page.getByLabel('Reason').fill('customer complaint 4711: tighter surface limit');
    await page.getByRole('button', { name: 'Save new version' }).click();
    // Client-side validation: nothing stored.
    await page.getByText(/number/i).first().waitFor();
    await usl.fill('0.45');
    // The editor applies the server's own plan rules: LSL equal to USL is allowed there, so what it
    // reports is the guard band (0.1) covering the empty tolerance, not the LSL.
    const lsl = page.getByTestId('plan-editor').locator('input[name="lsl"]').first();
    await lsl.fill('0.45');
    await page.getByTestId('plan-editor').getByTestId('error-guardBand').getByText(/guard bands cover the whole tolerance/i).waitFor();
    expect(await page.getByTestId('plan-editor').getByTestId('error-lsl').count()).toBe(0);
    await lsl.fill('');
    await page.getByRole('button', { name: 'Save new version' }).click();
    await page.locator('[data-testid="plan-version-row"][data-version="2"]').waitFor();
    const versions = (await getJson(`${visq.baseUrl}/v1/quality-plans/PN-1001/versions`, token)).body.versions;
    expect(versions[0]).toMatchObject({ version: 2, createdBy: 'emil', reason: 'customer complaint 4711: tighter surface limit' });
    await page.getByTestId('plan-diff').getByText(/usl/).first().waitFor();
    await shot(page, 'plan');

    const id = await inspect(good[6]!, 'SN-B-901');
    const doc = await decided(id);
    expect(doc.plan.version).toBe(2);
    expect(doc.characteristics[0].usl).toBe(0.45);
    expect(page.problems).toEqual([]);
    await page.context().close();
  });

  it('the audit trail lists every change, and `visq audit verify` detects a tampered entry', async () => {
    const page = await signIn('emil');
    await page.goto(`${visq.baseUrl}/#/audit`);
    await page.getByText('inspection.disposition').first().waitFor();
    await page.getByText('plan.version').first().waitFor();
    await shot(page, 'audit');
    await page.context().close();

    expect((await cli(['audit', 'verify'], env)).code).toBe(0);
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      // A database superuser goes around the append-only trigger and softens the disposition.
      await admin.query('ALTER TABLE audit_trail DISABLE TRIGGER audit_trail_append_only');
      const r = await admin.query("UPDATE audit_trail SET details = jsonb_set(details, '{decision}', '\"accept\"') WHERE action = 'inspection.disposition' RETURNING seq");
      const verify = await cli(['audit', 'verify'], env);
      expect(verify.code).toBe(1);
      expect(verify.stderr).toContain(`entry ${r.rows[0].seq} was changed`);
    } finally {
      await admin.end();
    }
  });
});
