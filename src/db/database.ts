import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../app/logger.js';

// Timestamps come back as ISO strings from our queries (to_json), numeric columns as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export type Database = pg.Pool;
/** The pool, or one client of it inside a transaction: what every repository function takes. */
export type Queryable = pg.Pool | pg.PoolClient;
/** A client inside a transaction (`inTransaction`). */
export type Transaction = pg.PoolClient;

/**
 * A pool of connections to visq's database. The statements run for every image are named (`{ name,
 * text, values }`): each connection prepares them once, so PostgreSQL does not parse and plan them
 * per image, which cost as much as running them. `durableCommits: false` is for writes that may be lost
 * in a crash of the server's machine without losing anything else (a worker marking an inspection
 * running): their commits do not wait for the disk.
 */
export function createDatabase(url: string, max = 10, { durableCommits = true } = {}): Database {
  // Only visq's schema: a role that may create schemas (BullMQ's queue needs one) cannot shadow its tables with a schema named after itself.
  const options = `-c search_path=public${durableCommits ? '' : ' -c synchronous_commit=off'}`;
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000, options });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  // Nor may a client checked out between two queries (a transaction storing a file) when the server
  // shuts down: its next query fails, the caller sees that, and the pool drops the client on release.
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** Whether a PostgreSQL server answers at `url` (within a second). */
export async function canConnect(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    // A client that never connected has nothing to end.
    await c.end().catch(() => {});
  }
}

/** One round trip: throws when the database cannot answer (readiness). */
export async function ping(db: Queryable): Promise<void> {
  await db.query('SELECT 1');
}

const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** The schema is behind and this role may not bring it up to date: waiting does not help. */
export class SchemaNotCurrentError extends Error {}

/**
 * Creates or upgrades the schema. node-pg-migrate holds an advisory lock, so concurrent starts are
 * safe. A role that does not own the schema (the application's, when another role migrates) only
 * checks that nothing is pending.
 */
export async function migrate(url: string, log: Logger): Promise<void> {
  const pending = await pendingMigrationsForNonOwner(url);
  if (pending !== null) {
    if (pending.length) throw new SchemaNotCurrentError(`the database schema needs migrating (${pending.join(', ')}), which DATABASE_URL's role may not do: set VISQ_MIGRATION_DATABASE_URL to a role that owns the schema`);
    return;
  }
  const applied = await runner({
    databaseUrl: url,
    dir: migrationsDir,
    direction: 'up',
    migrationsTable: 'visq_migrations',
    count: Infinity,
    log: (msg: string) => log.debug({ migration: msg }, 'migration'),
    verbose: false,
  });
  if (applied.length) log.info({ applied: applied.map((m) => m.name) }, 'database migrated');
}

/** null when this role owns the schema (or there is none yet); otherwise the migrations not applied. */
async function pendingMigrationsForNonOwner(url: string): Promise<string[] | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await c.connect();
  try {
    const r = await c.query<{ owned: boolean | null }>(
      `SELECT pg_has_role(current_user, c.relowner, 'USAGE') AS owned FROM pg_class c WHERE c.oid = to_regclass('public.visq_migrations')`);
    if (r.rows.length === 0 || r.rows[0]!.owned) return null;
    const applied = new Set((await c.query<{ name: string }>('SELECT name FROM public.visq_migrations')).rows.map((m) => m.name));
    return (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -4)).filter((m) => !applied.has(m)).sort();
  } finally {
    await c.end();
  }
}

export async function inTransaction<T>(db: Database, work: (client: Transaction) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // The transaction's own error is the one to report; a failed ROLLBACK leaves nothing committed anyway.
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
