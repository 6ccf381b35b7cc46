import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../app/logger.js';

// Timestamps come back as ISO strings from our queries (to_json), numeric columns as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export type Database = pg.Pool;

export function createDatabase(url: string, max = 10): Database {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  return pool;
}

const migrationsDir = fileURLToPath(new URL('../../migrations', import.meta.url));

/** Creates or upgrades the schema. node-pg-migrate holds an advisory lock, so concurrent starts are safe. */
export async function migrate(url: string, log: Logger): Promise<void> {
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

export async function inTransaction<T>(db: Database, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
