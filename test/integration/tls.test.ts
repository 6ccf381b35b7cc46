import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/app/logger.js';
import { initCluster, placeServer, startServer } from '../../src/embedded/embedded-postgres.js';
import { freePort } from '../../src/embedded/embedded-services.js';
import { redisUp, startProgram, until, type Stop } from '../support/services.js';
import { cli, fixture, postImage, startVisq, testEnv, type CliResult, type VisqProcess } from '../support/visq.js';

/**
 * README "Security": TLS and credentials go in the URLs (`mqtts://user:password@…`,
 * `postgres://…?sslmode=verify-full`, `rediss://:password@…`), and a private CA is given to all three
 * clients with NODE_EXTRA_CA_CERTS. Proven end to end against a Mosquitto, a Redis and a PostgreSQL
 * of this file's own that accept only TLS with a password, and whose certificate is signed by a
 * throwaway CA that Node does not know unless it is told.
 */
const exec = promisify(execFile);
const secret = () => randomBytes(12).toString('hex');
const pgPassword = `pg-${secret()}`;
const redisPassword = `redis-${secret()}`;
const mqttPassword = `mqtt-${secret()}`;
const mesPassword = `mes-${secret()}`;
const secrets = [pgPassword, redisPassword, mqttPassword, mesPassword];

const goodImage = async () => readFile(fixture('images', 'machined-surface', 'good', (await readdir(fixture('images', 'machined-surface', 'good'))).filter((f) => f.endsWith('.png')).sort()[0]!));

let dir: string;
let caPem: string;
let caFile: string;
const stops: Stop[] = [];
let pgPort: number;
let redisPort: number;
let mqttPort: number;
let admin: pg.Client;
let databaseUrl: string;
let redisUrl: string;
let mqttUrl: string;
let env: Record<string, string>;
let cleanupEnv: (() => Promise<void>) | undefined;
let reviewer: string;
let apiKey: string;
/** Everything visq wrote (logs, command output), checked for secrets at the end. */
const outputs: string[] = [];
const processes: VisqProcess[] = [];

const record = (r: CliResult): CliResult => (outputs.push(r.stdout, r.stderr), r);
const visq = async (command: 'start', e: Record<string, string>, waitReady = true) => {
  const p = await startVisq(command, e, waitReady).catch((err: Error) => { outputs.push(err.message); throw err; });
  processes.push(p);
  return p;
};

/** An MQTT client over TLS with its own credentials, trusting the private CA explicitly (no NODE_EXTRA_CA_CERTS in this process). */
const mesClient = (password = mesPassword, reconnectPeriod = 500) => mqtt.connectAsync(`mqtts://localhost:${mqttPort}`, {
  ca: caPem, username: 'mes', password, clientId: `test-mes-${secret()}`, reconnectPeriod, connectTimeout: 3000,
});

async function openssl(...args: string[]): Promise<void> {
  await exec('openssl', args, { cwd: dir });
}

/** A private CA and a certificate for localhost (DNS:localhost, IP:127.0.0.1) signed by it. */
async function makeCertificates(): Promise<void> {
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '2', '-subj', '/CN=visq throwaway test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  await openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  await writeFile(path.join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  await openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '2', '-out', 'server.pem', '-extfile', 'server.ext');
  caFile = path.join(dir, 'ca.pem');
  caPem = await readFile(caFile, 'utf8');
}

/** Mosquitto with only a TLS listener and password authentication (users `visq` and `mes`). */
async function startTlsMosquitto(): Promise<void> {
  mqttPort = await freePort();
  const mdir = path.join(dir, 'mosquitto');
  await mkdir(mdir);
  const passwd = path.join(mdir, 'passwd');
  await exec('mosquitto_passwd', ['-b', '-c', passwd, 'visq', mqttPassword]);
  await exec('mosquitto_passwd', ['-b', passwd, 'mes', mesPassword]);
  const conf = path.join(mdir, 'mosquitto.conf');
  await writeFile(conf, [
    `listener ${mqttPort} 127.0.0.1`,
    `cafile ${caFile}`,
    `certfile ${path.join(dir, 'server.pem')}`,
    `keyfile ${path.join(dir, 'server.key')}`,
    'allow_anonymous false',
    `password_file ${passwd}`,
    'persistence false',
    '',
  ].join('\n'));
  // Started as root, mosquitto drops to its own user, which must be able to read its files.
  for (const f of ['server.pem', 'server.key', 'ca.pem']) await chmod(path.join(dir, f), 0o644);
  await chmod(mdir, 0o755);
  for (const f of [passwd, conf]) await chmod(f, 0o644);
  const { stop } = await startProgram('mosquitto', ['-c', conf]);
  stops.push(stop);
  await until(async () => {
    try {
      const c = await mesClient(mesPassword, 0);
      await c.endAsync();
      return true;
    } catch {
      return false;
    }
  }, 'mosquitto (TLS) to listen');
}

/** Redis with only a TLS port and a password. */
async function startTlsRedis(): Promise<void> {
  redisPort = await freePort();
  const { stop } = await startProgram('redis-server', [
    '--port', '0', '--bind', '127.0.0.1', '--tls-port', String(redisPort),
    '--tls-cert-file', path.join(dir, 'server.pem'), '--tls-key-file', path.join(dir, 'server.key'), '--tls-ca-cert-file', caFile,
    '--tls-auth-clients', 'no', '--requirepass', redisPassword, '--save', '', '--appendonly', 'no',
  ]);
  stops.push(stop);
  await until(() => redisUp(`rediss://:${redisPassword}@localhost:${redisPort}`, { ca: caPem }), 'redis-server (TLS) to listen');
}

/**
 * PostgreSQL (the embedded binaries, placed as visq places them: as root the server runs as the
 * `postgres` account, from copies it can reach when the checkout is closed to it) with ssl=on,
 * accepting only TLS connections with a SCRAM password.
 */
async function startTlsPostgres(): Promise<void> {
  pgPort = await freePort();
  const log = createLogger('silent', {}, 2);
  const placement = await placeServer(path.join(dir, 'pg-data'), log);
  await initCluster(placement, pgPassword);
  // Only TLS connections, and only with a password.
  await writeFile(path.join(placement.cluster, 'pg_hba.conf'), 'hostssl all all 127.0.0.1/32 scram-sha-256\n');
  // The server's certificate and private key (0600), owned by the account the server runs as.
  const certFile = path.join(placement.cluster, 'server.pem');
  const keyFile = path.join(placement.cluster, 'server.key');
  await copyFile(path.join(dir, 'server.pem'), certFile);
  await copyFile(path.join(dir, 'server.key'), keyFile);
  await chmod(keyFile, 0o600);
  if (placement.account) {
    for (const f of ['pg_hba.conf', 'server.pem', 'server.key']) await chown(path.join(placement.cluster, f), placement.account.uid, placement.account.gid);
  }
  stops.push(await startServer(placement, pgPort, log, ['-c', 'ssl=on', '-c', `ssl_cert_file=${certFile}`, '-c', `ssl_key_file=${keyFile}`]));
  admin = new pg.Client({ host: 'localhost', port: pgPort, user: 'postgres', password: pgPassword, database: 'postgres', ssl: { ca: caPem } });
  await admin.connect();
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'visq-tls-'));
  // The servers run as their own users (as root: `mosquitto`, `postgres`), which must pass through it.
  await chmod(dir, 0o755);
  await makeCertificates();
  await Promise.all([startTlsMosquitto(), startTlsRedis(), startTlsPostgres()]);

  databaseUrl = `postgres://postgres:${pgPassword}@localhost:${pgPort}/postgres?sslmode=verify-full`;
  redisUrl = `rediss://:${redisPassword}@localhost:${redisPort}`;
  mqttUrl = `mqtts://visq:${mqttPassword}@localhost:${mqttPort}`;
  ({ env, cleanup: cleanupEnv } = await testEnv({
    databaseUrl, redisUrl, mqttUrl,
    extra: { NODE_EXTRA_CA_CERTS: caFile, VISQ_STARTUP_WAIT_SECONDS: '2' },
  }));

  expect(record(await cli(['migrate'], env))).toMatchObject({ code: 0 });
  const run = async (args: string[], input?: string) => {
    const r = record(await cli(args, env, input));
    if (r.code !== 0) throw new Error(`visq ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  ({ apiKey } = await run(['station', 'add', 'cam-1', '--line', 'line-a']));
  ({ token: reviewer } = await run(['user', 'add', 'rita', '--role', 'reviewer']));
  expect(await run(['plan', 'apply', fixture('plans', 'PN-1001.json')])).toEqual({ partNumber: 'PN-1001', operation: null, version: 1 });
});

afterAll(async () => {
  for (const p of processes) await p.stop().catch(() => {});
  await admin?.end().catch(() => {});
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await cleanupEnv?.();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('TLS and credentials in the URLs, a private CA through NODE_EXTRA_CA_CERTS', () => {
  it('the services accept only TLS with a password', async () => {
    const plain = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: pgPassword, database: 'postgres', ssl: false });
    await expect(plain.connect()).rejects.toThrow(/no encryption/);
    await plain.end().catch(() => {});
    await expect(mqtt.connectAsync(`mqtt://localhost:${mqttPort}`, { username: 'mes', password: mesPassword, reconnectPeriod: 0, connectTimeout: 2000 })).rejects.toThrow();
    // Without the CA, Node refuses the certificate (this test process has no NODE_EXTRA_CA_CERTS).
    await expect(mqtt.connectAsync(`mqtts://localhost:${mqttPort}`, { username: 'mes', password: mesPassword, reconnectPeriod: 0, connectTimeout: 2000 })).rejects.toThrow(/certificate/);
  });

  it('a part goes camera → visq → MES over mqtts://, postgres://…?sslmode=verify-full and rediss://', async () => {
    const mes = await mesClient();
    try {
      await mes.subscribeAsync(`${env.VISQ_TOPIC_PREFIX}/#`, { qos: 1 });
      const messages: { topic: string; payload: string }[] = [];
      mes.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString() }));

      const api = await visq('start', env);
      const ready = await fetch(`${api.baseUrl}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok', queue: 'ok', broker: 'ok', models: 'ok', decoder: 'ok', storage: 'ok' } });

      const res = await postImage(api.baseUrl, apiKey, [{ bytes: await goodImage() }], { serial: 'SN-TLS-1', partNumber: 'PN-1001', lotId: 'LOT-TLS' });
      expect(res.status).toBe(202);
      const verdictTopic = `${env.VISQ_TOPIC_PREFIX}/site1/line-a/cam-1/verdict`;
      await until(() => messages.some((m) => m.topic === verdictTopic), 'the verdict over TLS', 30_000);
      const verdict = JSON.parse(messages.find((m) => m.topic === verdictTopic)!.payload);
      expect(verdict).toMatchObject({ id: res.body.id, status: 'done', verdict: 'PASS', stationId: 'cam-1', serial: 'SN-TLS-1', lotId: 'LOT-TLS', final: false });
      expect(messages).toContainEqual({ topic: `${env.VISQ_TOPIC_PREFIX}/site1/_module/state`, payload: 'online' });
      const doc = await fetch(`${api.baseUrl}/v1/inspections/${res.body.id}`, { headers: { authorization: `Bearer ${reviewer}` } });
      expect(await doc.json()).toMatchObject({ id: res.body.id, verdict: 'PASS' });

      // The job went through the TLS Redis: its keys are there, under this env's queue prefix.
      const r = new Redis(redisUrl, { tls: { ca: caPem }, maxRetriesPerRequest: 1 });
      try {
        expect((await r.keys(`${env.VISQ_QUEUE_PREFIX}:*`)).length).toBeGreaterThan(0);
      } finally {
        r.disconnect();
      }
      // visq's own connections to PostgreSQL are encrypted.
      const ssl = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'visq-mes-link' AND s.ssl`);
      expect(ssl.rows[0].n).toBe(1);

      expect(await api.stop()).toBe(0);
    } finally {
      await mes.endAsync(true);
    }
  });

  it('a wrong MQTT password: /readyz names the broker (503) while uploads are accepted and verdicts wait in the outbox', async () => {
    const wrong = `wrong-${secret()}`;
    secrets.push(wrong);
    const badEnv = { ...env, MQTT_URL: `mqtts://visq:${wrong}@localhost:${mqttPort}` };
    const api = await visq('start', badEnv, false);
    let readyz: { status: number; body: any } = { status: 0, body: null };
    await until(async () => {
      if (api.child.exitCode !== null) throw new Error(`visq start exited ${api.child.exitCode}:\n${api.logs.join('\n')}`);
      try {
        const res = await fetch(`${api.baseUrl}/readyz`);
        readyz = { status: res.status, body: await res.json() };
        return readyz.status === 503 && String(readyz.body.checks.broker).startsWith('MQTT broker');
      } catch {
        return false;
      }
    }, '/readyz to report the broker', 30_000, 200);
    expect(readyz.body).toMatchObject({ status: 'not_ready', checks: { database: 'ok', queue: 'ok', models: 'ok' } });
    expect(readyz.body.checks.broker).toBe(`MQTT broker mqtts://visq:***@localhost:${mqttPort} is not connected`);
    expect(readyz.body.checks.broker).not.toContain(wrong);

    const res = await postImage(api.baseUrl, apiKey, [{ bytes: await goodImage() }], { serial: 'SN-TLS-2', partNumber: 'PN-1001', lotId: 'LOT-TLS' });
    expect(res.status).toBe(202);
    await until(async () => (await admin.query('SELECT 1 FROM outbox WHERE inspection_id = $1', [res.body.id])).rowCount === 1, 'the verdict in the outbox', 30_000);
    // It stays there while the broker refuses visq (a correct link relays it within milliseconds).
    await new Promise((r) => setTimeout(r, 1000));
    const row = (await admin.query('SELECT sent_at FROM outbox WHERE inspection_id = $1', [res.body.id])).rows[0];
    expect(row.sent_at).toBeNull();
    expect((await fetch(`${api.baseUrl}/readyz`)).status).toBe(503);
    expect(api.json().some((l) => l.msg === 'MQTT broker error' && /not authori[sz]ed/i.test(l.err))).toBe(true);
    await api.stop();
  });

  it('without NODE_EXTRA_CA_CERTS, sslmode=verify-full refuses the server and `visq migrate` exits 1 naming the certificate problem', async () => {
    const { NODE_EXTRA_CA_CERTS: _, ...noCa } = env;
    const started = Date.now();
    const r = record(await cli(['migrate'], noCa));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach PostgreSQL at postgres:\/\/postgres:\*\*\*@localhost:\d+\/postgres\?sslmode=verify-full: .*(certificate|self[- ]signed)/);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('no secret appears in anything visq printed', () => {
    for (const p of processes) outputs.push(...p.logs);
    const text = outputs.join('\n');
    expect(text.length).toBeGreaterThan(0);
    // Redacted URLs were logged (so the check looks at the lines that name them)…
    expect(text).toContain(`visq:***@localhost:${mqttPort}`);
    // …but never a password (the station key and the token are printed once by `station add` and `user add`, by design).
    for (const s of secrets) expect(text).not.toContain(s);
  });
});
