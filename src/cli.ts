#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { Command, CommanderError, Option } from 'commander';
import { roles, type Role } from './access/roles.js';
import { InputError } from './cli-errors.js';
import { ConfigError, loadConfig } from './config.js';
import { ModelLoadError, loadRegistry, measureCatalog } from './inference/model-registry.js';
import { createLogger } from './logger.js';
import { registerModelCommands } from './model-fit/commands.js';
import { createMetrics } from './ops/metrics.js';
import { validateQualityPlan } from './quality/quality-plan.js';
import { openDatabase, openQueueBackend, openRegistry, resolveDatabaseUrl, resolveMqttUrl, runAll, runApi, runWorker, Runtime, UsageError } from './runtime.js';
import { storePlanVersion } from './traceability/quality-plans.js';
import { AlreadyExistsError, addStation, addUser } from './traceability/stations-and-users.js';


function runtime(component: string, quiet = false): Runtime {
  const config = loadConfig();
  // Admin commands print JSON on stdout; their logs go to stderr and stay quiet.
  const log = quiet ? createLogger('warn', { component }, 2) : createLogger(config.logLevel, { component });
  return new Runtime(config, log, createMetrics());
}

/** Runs until SIGINT/SIGTERM, then stops everything in order. */
async function serve(rt: Runtime, start: () => Promise<void>): Promise<void> {
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    rt.log.info({ signal }, 'shutting down: finishing jobs in hand and flushing verdicts');
    await rt.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  try {
    await start();
  } catch (err) {
    await rt.stop();
    throw err;
  }
}

/** Runs an admin command against the database, then stops whatever it started. */
async function withDatabase<T>(work: (rt: Runtime, db: Awaited<ReturnType<typeof openDatabase>>) => Promise<T>): Promise<T> {
  const rt = runtime('cli', true);
  try {
    const url = await resolveDatabaseUrl(rt, true);
    const db = await openDatabase(rt, url, 10);
    return await work(rt, db);
  } finally {
    await rt.stop();
  }
}

const program = new Command('visq')
  .description('AI visual inspection: camera images → ONNX defect models → quality-plan verdicts → MES over MQTT')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

program.command('start').description('API, inspection workers and MQTT relay in one process (embedded PostgreSQL and broker unless DATABASE_URL / MQTT_URL are set)')
  .action(async () => {
    const rt = runtime('start');
    await serve(rt, async () => { await runAll(rt); });
  });

program.command('api').description('the HTTP API and the MES link alone (needs DATABASE_URL and MQTT_URL; REDIS_URL for a Redis queue)')
  .action(async () => {
    const rt = runtime('api');
    await serve(rt, async () => {
      const registry = await openRegistry(rt);
      const databaseUrl = await resolveDatabaseUrl(rt, false);
      const mqttUrl = await resolveMqttUrl(rt, false);
      const db = await openDatabase(rt, databaseUrl);
      await runApi(rt, db, await openQueueBackend(rt, databaseUrl), registry, databaseUrl, mqttUrl);
    });
  });

program.command('worker').description('inspection workers alone (needs DATABASE_URL; REDIS_URL for a Redis queue); run as many as you like')
  .action(async () => {
    const rt = runtime('worker');
    await serve(rt, async () => {
      const registry = await openRegistry(rt);
      const databaseUrl = await resolveDatabaseUrl(rt, false);
      const db = await openDatabase(rt, databaseUrl);
      await runWorker(rt, db, await openQueueBackend(rt, databaseUrl), registry);
    });
  });

program.command('migrate').description('create or upgrade the database schema (idempotent)')
  .action(async () => {
    await withDatabase(async () => {});
    process.stdout.write(`${JSON.stringify({ migrated: true })}\n`);
  });

const station = program.command('station').description('camera stations');
station.command('add <stationId>').description('register a camera station; prints its API key once')
  .requiredOption('--line <line>', 'production line id')
  .option('--site <site>', 'site id (default: VISQ_SITE)')
  .action(async (stationId: string, opts: { line: string; site?: string }) => {
    const level = /^[A-Za-z0-9_-]{1,64}$/;
    for (const [what, v] of [['stationId', stationId], ['--line', opts.line], ['--site', opts.site ?? 'site1']] as const) {
      if (!level.test(v)) throw new InputError(`${what} "${v}": 1–64 letters, digits, "_" or "-" (it is an MQTT topic level)`);
    }
    const out = await withDatabase((rt, db) => addStation(db, stationId, opts.site ?? rt.config.site, opts.line));
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

const user = program.command('user').description('people');
user.command('add <username>').description('create an account; prints a personal API token once')
  .addOption(new Option('--role <role>', 'what the person may do').choices(roles as string[]).makeOptionMandatory())
  .action(async (username: string, opts: { role: Role }) => {
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(username)) throw new InputError(`username "${username}": 1–64 letters, digits or "_.@-"`);
    const out = await withDatabase((_rt, db) => addUser(db, username, opts.role, null));
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

const plan = program.command('plan').description('quality plans');
plan.command('apply <file>').description('validate a quality plan (JSON) and store it as a new version')
  .action(async (file: string) => {
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new InputError(`cannot read ${file} as JSON: ${(err as Error).message}`);
    }
    const config = loadConfig();
    const checked = validateQualityPlan(doc, measureCatalog(await loadRegistry(config.modelsDir)));
    if (!checked.ok) throw new InputError(`invalid quality plan ${file}:\n  ${checked.problems.join('\n  ')}`);
    const stored = await withDatabase((_rt, db) => storePlanVersion(db, checked.plan, 'cli'));
    process.stdout.write(`${JSON.stringify({ partNumber: stored.partNumber, operation: stored.operation, version: stored.version })}\n`);
  });

program.command('demo').description('run a demo lot of fixture images through the whole pipeline and print what the MES received')
  .option('--images <n>', 'how many fixture images to send', '12')
  .action(async (opts: { images: string }) => {
    const { runDemo } = await import('./demo/demo.js');
    const n = Number(opts.images);
    if (!Number.isInteger(n) || n < 1) throw new InputError('--images must be a positive integer');
    await runDemo(n);
  });

registerModelCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const usage = err instanceof InputError || err instanceof ConfigError || err instanceof UsageError || err instanceof AlreadyExistsError;
  process.stderr.write(`visq: ${err instanceof ModelLoadError ? 'model registry: ' : ''}${(err as Error).message}\n`);
  process.exit(usage ? 2 : 1);
}
