import pg from 'pg';
import type { Logger } from '../app/logger.js';
import type { Queryable } from './database.js';

/**
 * visq runs as a database role that does not own its tables: only a table's owner (or a superuser)
 * can disable its triggers, so the records the triggers keep unchanged stay so for the role the
 * application runs as. The owner runs the migrations and grants the application what it does, no
 * more. Tables not named here get SELECT, INSERT, UPDATE and DELETE.
 */
const grantsByTable: Record<string, string> = {
  // Append-only records: the triggers refuse changes, and the role has no right to try.
  audit_trail: 'SELECT, INSERT',
  audit_trail_start: 'SELECT',
  dispositions: 'SELECT, INSERT',
  quality_plans: 'SELECT, INSERT',
  inspection_images: 'SELECT, INSERT',
  inspection_artifacts: 'SELECT, INSERT',
  // The relay marks messages sent; nothing else about a message changes (outbox_sent_only).
  outbox: 'SELECT, INSERT, UPDATE (sent_at)',
  visq_migrations: 'SELECT',
};

/** The role a connection string names (libpq's default, the OS user, when it names none). */
async function roleOf(url: string): Promise<string> {
  const named = decodeURIComponent(new URL(url).username);
  if (named) return named;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ r: string }>('SELECT current_user AS r')).rows[0]!.r;
  } finally {
    await c.end();
  }
}

/**
 * Makes the application's role (from `appUrl`) ready as the owner (`ownerUrl`): creates it with the
 * URL's password when it does not exist yet, and grants it the rights above on every table the
 * migrations made. Run after each migration; several processes may run it at once.
 */
export async function grantApplicationRole(ownerUrl: string, appUrl: string, log: Logger): Promise<void> {
  const app = await roleOf(appUrl);
  const owner = new pg.Client({ connectionString: ownerUrl });
  await owner.connect();
  try {
    const me = (await owner.query<{ r: string }>('SELECT current_user AS r')).rows[0]!.r;
    if (me === app) {
      log.warn({ role: app }, 'DATABASE_URL and VISQ_MIGRATION_DATABASE_URL name the same role: visq runs as the owner of its tables, which can disable the triggers that keep records unchanged');
      return;
    }
    const role = pg.escapeIdentifier(app);
    await owner.query('BEGIN');
    // Concurrent GRANTs on the same objects fail ("tuple concurrently updated"): one process at a time.
    await owner.query("SELECT pg_advisory_xact_lock(hashtext('visq:grants'))");
    const exists = await owner.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [app]);
    if (exists.rowCount === 0) {
      const password = decodeURIComponent(new URL(appUrl).password);
      await owner.query(`CREATE ROLE ${role} LOGIN${password ? ` PASSWORD ${pg.escapeLiteral(password)}` : ''}`).catch((err: Error) => {
        throw new Error(`cannot create the application's database role "${app}" as "${me}" (${err.message}): create it (CREATE ROLE ${role} LOGIN PASSWORD '…') or give "${me}" CREATEROLE`);
      });
      log.info({ role: app }, 'application database role created');
    }
    const tables = await owner.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`);
    // CREATE on the database: BullMQ's PostgreSQL backend makes and migrates a schema of its own (`bullmq`).
    await owner.query(`GRANT CONNECT, CREATE ON DATABASE ${pg.escapeIdentifier((await owner.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d)} TO ${role}`);
    await owner.query(`GRANT USAGE ON SCHEMA public TO ${role}`);
    for (const { name } of tables.rows) {
      const table = `public.${pg.escapeIdentifier(name)}`;
      await owner.query(`REVOKE ALL ON ${table} FROM ${role}`);
      await owner.query(`GRANT ${grantsByTable[name] ?? 'SELECT, INSERT, UPDATE, DELETE'} ON ${table} TO ${role}`);
    }
    await owner.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
    // A queue schema made before the roles were apart belongs to the owner: the application uses it all.
    const queueSchema = await owner.query('SELECT 1 FROM pg_namespace WHERE nspname = $1 AND NOT pg_has_role($2, nspowner, $3)', ['bullmq', app, 'USAGE']);
    if (queueSchema.rowCount) {
      for (const what of ['SCHEMA bullmq', 'ALL TABLES IN SCHEMA bullmq', 'ALL SEQUENCES IN SCHEMA bullmq']) await owner.query(`GRANT ALL ON ${what} TO ${role}`);
      await owner.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA bullmq TO ${role}`);
    }
    await owner.query('COMMIT');
  } catch (err) {
    await owner.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await owner.end();
  }
}

/** Why the role of this connection could change records unseen by the triggers; empty when it cannot. */
export async function roleWarnings(db: Queryable): Promise<string[]> {
  const r = await db.query<{ role: string; superuser: boolean; owner: boolean }>(
    `SELECT current_user AS role, r.rolsuper AS superuser, pg_has_role(current_user, c.relowner, 'USAGE') AS owner
     FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'public.inspections'::regclass`);
  const row = r.rows[0];
  if (!row) return [];
  if (row.superuser) return [`visq's database role "${row.role}" is a superuser: it can turn the triggers off and change any record; run visq as a role of its own (VISQ_MIGRATION_DATABASE_URL, README "Database roles")`];
  if (row.owner) return [`visq's database role "${row.role}" owns its tables: it can disable the triggers that keep records unchanged; run visq as a role that does not own them (VISQ_MIGRATION_DATABASE_URL, README "Database roles")`];
  return [];
}
