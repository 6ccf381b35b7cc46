#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import readline from 'node:readline';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { roles, type Role } from '../access/roles.js';
import { DomainError, InvalidInputError } from '../errors.js';
import { loadConfig } from './config.js';
import { ModelLoadError, loadRegistry, measureCatalog } from '../inference/model-registry.js';
import { createLogger } from './logger.js';
import { registerModelCommands } from '../model-fit/commands.js';
import { createMetrics } from './metrics.js';
import { validateQualityPlan } from '../quality/quality-plan.js';
import { createPruner, Listener, openDatabase, openQueueBackend, openRegistry, resolveDatabaseUrls, resolveMqttUrl, runAll, runApi, runWorker, Runtime } from './runtime.js';
import { leaderLockKeys, whileLeading } from '../db/leadership.js';
import { holdLot, releaseLot } from '../db/lots.js';
import { note, text } from '../fields.js';
import { storePlanVersion } from '../db/quality-plans.js';
import { addStation, listStations, rotateStationKey, setStationDisabled } from '../db/stations.js';
import { addUser, issueToken, listUsers, revokeToken, setPassword, setRole, setUserDisabled } from '../db/users.js';
import { verifyAuditTrail } from '../db/audit-verification.js';
import { aliveSeconds, runningWorkers } from '../db/processes.js';
import { listFew } from '../text.js';
import type { QualityPlan } from '../quality/quality-plan.js';
import { hashPassword, passwordProblem } from '../access/passwords.js';

/**
 * A stored plan that no running worker can evaluate decides every part REVIEW: say so when it is
 * stored, not when parts pile up in review.
 */
function planWarnings(plan: QualityPlan, workers: Awaited<ReturnType<typeof runningWorkers>>): string[] {
  const named = [...new Set(plan.characteristics.map((c) => c.model))];
  if (workers.length === 0) return [`no visq worker is running now (none seen in the last ${aliveSeconds} s); inspections of ${plan.partNumber} wait until one starts`];
  return named.flatMap((id) => {
    const having = workers.filter((w) => w.models.some((m) => m.id === id));
    if (having.length === 0) {
      return [`model "${id}" is not loaded by any running worker (${workers.length} running; they have ${listFew([...new Set(workers.flatMap((w) => w.models.map((m) => m.id)))])}): inspections of ${plan.partNumber} are decided REVIEW until workers with it are started`];
    }
    return having.length < workers.length ? [`model "${id}" is loaded by ${having.length} of ${workers.length} running workers: parts that reach the others are decided REVIEW`] : [];
  });
}

/** Who the audit trail names for changes made at the command line. */
function cliActor(): string {
  try {
    return `cli:${os.userInfo().username}`;
  } catch {
    // A container may run under a uid with no account (Kubernetes runAsUser).
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`;
  }
}

/** A password from stdin (one line), or typed at a prompt without echo when stdin is a terminal. */
async function readPassword(): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    process.stderr.write('Password: ');
    // Typed characters are not echoed.
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
    password = await new Promise<string>((resolve) => rl.question('', resolve));
    rl.close();
    process.stderr.write('\n');
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  const problem = passwordProblem(password);
  if (problem) throw new InvalidInputError('invalid_argument', problem);
  return password;
}


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
async function withDatabase<T>(work: (rt: Runtime, db: Awaited<ReturnType<typeof openDatabase>>, url: string) => Promise<T>): Promise<T> {
  const rt = runtime('cli', true);
  try {
    const urls = await resolveDatabaseUrls(rt, true);
    const db = await openDatabase(rt, urls, 10);
    return await work(rt, db, urls.url);
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
      const listener = await Listener.open(rt);
      const registry = await openRegistry(rt);
      const databaseUrls = await resolveDatabaseUrls(rt, false);
      const mqttUrl = await resolveMqttUrl(rt, false);
      const db = await openDatabase(rt, databaseUrls);
      await runApi(rt, listener, db, await openQueueBackend(rt, databaseUrls.url), registry, databaseUrls.url, mqttUrl);
    });
  });

program.command('worker').description('inspection workers alone (needs DATABASE_URL; REDIS_URL for a Redis queue); run as many as you like')
  .action(async () => {
    const rt = runtime('worker');
    await serve(rt, async () => {
      const registry = await openRegistry(rt);
      const databaseUrls = await resolveDatabaseUrls(rt, false);
      const db = await openDatabase(rt, databaseUrls);
      await runWorker(rt, db, await openQueueBackend(rt, databaseUrls.url), registry, databaseUrls.url);
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
      if (!level.test(v)) throw new InvalidInputError('invalid_argument', `${what} "${v}": 1–64 letters, digits, "_" or "-" (it is an MQTT topic level)`);
    }
    const out = await withDatabase((rt, db) => addStation(db, cliActor(), stationId, opts.site ?? rt.config.site, opts.line));
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });

station.command('list').description('every station, with its line and whether it is disabled (JSON)')
  .action(async () => {
    process.stdout.write(`${JSON.stringify(await withDatabase((_rt, db) => listStations(db)))}\n`);
  });
station.command('rotate-key <stationId>').description("issue a new API key for a station (its old key stops working at once); prints it once")
  .option('--reason <why>', 'kept in the audit trail')
  .action(async (stationId: string, opts: { reason?: string }) => {
    process.stdout.write(`${JSON.stringify(await withDatabase((_rt, db) => rotateStationKey(db, cliActor(), stationId, opts.reason ?? null)))}\n`);
  });
for (const [name, disabled] of [['disable', true], ['enable', false]] as const) {
  station.command(`${name} <stationId>`).description(disabled ? 'refuse the station\'s key (it stays in the record)' : 'accept the station\'s key again')
    .option('--reason <why>', 'kept in the audit trail')
    .action(async (stationId: string, opts: { reason?: string }) => {
      await withDatabase((_rt, db) => setStationDisabled(db, cliActor(), stationId, disabled, opts.reason ?? null));
      process.stdout.write(`${JSON.stringify({ stationId, disabled })}\n`);
    });
}

const user = program.command('user').description('people and API integrations');
const usernamePattern = /^[A-Za-z0-9_.@-]{1,64}$/;
const tokenDays = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new InvalidArgumentError('a whole number of days from 1 to 3650');
  return n;
};
user.command('add <username>').description('create an account; prints a personal API token once')
  .addOption(new Option('--role <role>', 'what the person may do').choices(roles as string[]).makeOptionMandatory())
  .option('--name <full name>', 'the printed name electronic signatures show (default: the username)')
  .option('--password-stdin', 'read a password for the review workbench from stdin (needed to sign in and to sign dispositions)')
  .option('--integration', 'an API integration without a password: it signs dispositions with its token alone, and the record says so')
  .option('--token-days <days>', 'days until the API token expires', tokenDays, 365)
  .action(async (username: string, opts: { role: Role; name?: string; passwordStdin?: boolean; integration?: boolean; tokenDays: number }) => {
    if (!usernamePattern.test(username)) throw new InvalidInputError('invalid_argument', `username "${username}": 1–64 letters, digits or "_.@-"`);
    const fullName = opts.name?.trim() || null;
    if (fullName !== null && fullName.length > 200) throw new InvalidInputError('invalid_argument', '--name: at most 200 characters');
    if (opts.integration && opts.passwordStdin) throw new InvalidInputError('invalid_argument', '--integration accounts have no password: leave out --password-stdin');
    const passwordHash = opts.passwordStdin ? await hashPassword(await readPassword()) : null;
    const out = await withDatabase((_rt, db) => addUser(db, cliActor(), { username, role: opts.role, fullName, passwordHash, integration: opts.integration ?? false, tokenDays: opts.tokenDays }));
    process.stdout.write(`${JSON.stringify(out)}\n`);
  });
user.command('passwd <username>').description("set or reset a person's password (from stdin, or typed at a prompt); ends their sessions and revokes their API token")
  .action(async (username: string) => {
    const passwordHash = await hashPassword(await readPassword());
    await withDatabase((_rt, db) => setPassword(db, cliActor(), username, passwordHash));
    process.stdout.write(`${JSON.stringify({ username, passwordSet: true, tokenRevoked: true })}\n`);
  });
user.command('list').description('every account: role, integration, disabled, password set, token expiry (JSON)')
  .action(async () => {
    process.stdout.write(`${JSON.stringify(await withDatabase((_rt, db) => listUsers(db)))}\n`);
  });
user.command('role <username> <role>').description("change a person's role")
  .option('--reason <why>', 'kept in the audit trail')
  .action(async (username: string, role: string, opts: { reason?: string }) => {
    if (!(roles as string[]).includes(role)) throw new InvalidInputError('invalid_argument', `role "${role}": one of ${roles.join(', ')}`);
    await withDatabase((_rt, db) => setRole(db, cliActor(), username, role as Role, opts.reason ?? null));
    process.stdout.write(`${JSON.stringify({ username, role })}\n`);
  });
user.command('token <username>').description('issue a new API token (the old one stops working at once); prints it once')
  .option('--days <days>', 'days until it expires', tokenDays, 365)
  .action(async (username: string, opts: { days: number }) => {
    process.stdout.write(`${JSON.stringify(await withDatabase((_rt, db) => issueToken(db, cliActor(), username, opts.days)))}\n`);
  });
user.command('revoke-token <username>').description('revoke the API token (sign-in with a password still works)')
  .option('--reason <why>', 'kept in the audit trail')
  .action(async (username: string, opts: { reason?: string }) => {
    await withDatabase((_rt, db) => revokeToken(db, cliActor(), username, opts.reason ?? null));
    process.stdout.write(`${JSON.stringify({ username, tokenRevoked: true })}\n`);
  });
for (const [name, disabled] of [['disable', true], ['enable', false]] as const) {
  user.command(`${name} <username>`).description(disabled ? 'refuse the account everywhere (sessions end; it stays in the record)' : 'accept the account again')
    .option('--reason <why>', 'kept in the audit trail')
    .action(async (username: string, opts: { reason?: string }) => {
      await withDatabase((_rt, db) => setUserDisabled(db, cliActor(), username, disabled, opts.reason ?? null));
      process.stdout.write(`${JSON.stringify({ username, disabled })}\n`);
    });
}

const plan = program.command('plan').description('quality plans');
plan.command('apply <file>').description('validate a quality plan (JSON) and store it as a new version')
  .option('--reason <why>', 'why this version was made (kept in the audit trail)')
  .action(async (file: string, opts: { reason?: string }) => {
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new InvalidInputError('invalid_argument', `cannot read ${file} as JSON: ${(err as Error).message}`);
    }
    const config = loadConfig();
    const checked = validateQualityPlan(doc, measureCatalog(await loadRegistry(config.modelsDir)));
    if (!checked.ok) throw new InvalidInputError('invalid_argument', `invalid quality plan ${file}:\n  ${checked.problems.join('\n  ')}`);
    const { stored, workers } = await withDatabase(async (_rt, db) => ({
      stored: await storePlanVersion(db, checked.plan, cliActor(), opts.reason ?? null),
      workers: await runningWorkers(db),
    }));
    for (const warning of planWarnings(checked.plan, workers)) process.stderr.write(`visq: warning: ${warning}\n`);
    process.stdout.write(`${JSON.stringify({ partNumber: stored.partNumber, operation: stored.operation, version: stored.version })}\n`);
  });

program.command('demo').description('run a demo lot of fixture images through the whole pipeline and print what the MES received')
  .option('--images <n>', 'how many fixture images to send', '12')
  .action(async (opts: { images: string }) => {
    const { runDemo } = await import('./demo.js');
    const n = Number(opts.images);
    if (!Number.isInteger(n) || n < 1) throw new InvalidInputError('invalid_argument', '--images must be a positive integer');
    await runDemo(n);
  });

const audit = program.command('audit').description('the audit trail');
audit.command('verify').description('check the audit trail and the outbox\'s hash chains, signed records, accounts and every decided part against its first verdict message; exit 1 and name each change')
  .action(async () => {
    const report = await withDatabase((_rt, db) => verifyAuditTrail(db));
    process.stdout.write(`${JSON.stringify(report)}\n`);
    for (const w of report.warnings) process.stderr.write(`visq: warning: ${w}\n`);
    if (!report.intact) {
      for (const p of report.problems) process.stderr.write(`visq: audit: ${p}\n`);
      process.exitCode = 1;
    }
  });

const lot = program.command('lot').description('lots');
const lotIdArgument = (lotId: string) => {
  const parsed = text(128).safeParse(lotId);
  if (!parsed.success) throw new InvalidInputError('invalid_argument', `lotId "${lotId}": 1–128 characters without control characters`);
  return parsed.data;
};
const reasonOption = (reason: string | undefined) => {
  if (reason === undefined) return null;
  const parsed = note(2000).safeParse(reason);
  if (!parsed.success) throw new InvalidInputError('invalid_argument', '--reason: 1–2000 characters without control characters');
  return parsed.data;
};
lot.command('hold <lotId>').description('put a lot on hold: none of its images is removed by the retention policy until it is released')
  .requiredOption('--reason <why>', 'why (kept in the audit trail)')
  .action(async (lotId: string, opts: { reason: string }) => {
    const id = lotIdArgument(lotId);
    const reason = reasonOption(opts.reason)!;
    const hold = await withDatabase((_rt, db) => holdLot(db, cliActor(), id, reason));
    process.stdout.write(`${JSON.stringify({ lotId: id, hold })}\n`);
  });
lot.command('release <lotId>').description("release a lot's hold: its images are subject to the retention policy again")
  .option('--reason <why>', 'why (kept in the audit trail)')
  .action(async (lotId: string, opts: { reason?: string }) => {
    const id = lotIdArgument(lotId);
    const reason = reasonOption(opts.reason);
    await withDatabase((_rt, db) => releaseLot(db, cliActor(), id, reason));
    process.stdout.write(`${JSON.stringify({ lotId: id, hold: null })}\n`);
  });

const storage = program.command('storage').description('the image store: usage and retention (run with the VISQ_DATA_DIR and VISQ_STORAGE_*/VISQ_RETAIN_* of the service)');
storage.command('status').description('bytes, files and oldest file per class, the quota and its watermarks, and the days to the quota at the current rate')
  .action(async () => {
    const status = await withDatabase((rt, db) => createPruner(rt, db).status());
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
  });
storage.command('prune').description('one pruning run now, as the leading process would; with --dry-run, only what it would remove')
  .option('--dry-run', 'change nothing: say what would be removed and why, and what is kept')
  .action(async (opts: { dryRun?: boolean }) => {
    const report = await withDatabase(async (rt, db, url) => {
      const pruner = createPruner(rt, db);
      if (opts.dryRun) return pruner.prune({ dryRun: true });
      const r = await whileLeading(url, leaderLockKeys.pruner, () => pruner.prune({ dryRun: false }));
      if (!r) throw new Error('a running visq process leads the pruner (two never prune at once); it prunes at its next run (VISQ_PRUNE_INTERVAL_SECONDS), or see --dry-run');
      return r;
    });
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  });

registerModelCommands(program);

// A reader that goes away (`visq model check … | head`) ends the output, not the process with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const usage = err instanceof DomainError;
  process.stderr.write(`visq: ${err instanceof ModelLoadError ? 'model registry: ' : ''}${(err as Error).message}\n`);
  process.exit(usage ? 2 : 1);
}
