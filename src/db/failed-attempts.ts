import { createHash } from 'node:crypto';
import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import type { Database } from './database.js';

/**
 * Failed sign-ins and signatures counted in PostgreSQL (express-rate-limit's Store): every API
 * process sees the same counts, and a restart forgets none of them. `kind` keeps the limits apart.
 */
export class FailedAttempts implements Store {
  private windowSeconds = 60;
  private increments = 0;
  readonly localKeys = false;

  constructor(private readonly db: Database, readonly prefix: string) {}

  init(options: Options): void {
    this.windowSeconds = Math.ceil(options.windowMs / 1000);
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    // A window that has run out starts again at 1.
    const r = await this.db.query<{ count: number; reset_at: Date }>(
      `INSERT INTO failed_attempts (key, count, reset_at) VALUES ($1, 1, now() + make_interval(secs => $2))
       ON CONFLICT (key) DO UPDATE SET
         count = CASE WHEN failed_attempts.reset_at <= now() THEN 1 ELSE failed_attempts.count + 1 END,
         reset_at = CASE WHEN failed_attempts.reset_at <= now() THEN EXCLUDED.reset_at ELSE failed_attempts.reset_at END
       RETURNING count, reset_at`,
      [this.rowKey(key), this.windowSeconds],
    );
    // Windows that ran out long ago go as new attempts come, so the table stays small.
    if (++this.increments % 100 === 0) await this.db.query(`DELETE FROM failed_attempts WHERE reset_at < now() - interval '1 day'`);
    return { totalHits: r.rows[0]!.count, resetTime: r.rows[0]!.reset_at };
  }

  async decrement(key: string): Promise<void> {
    await this.db.query('UPDATE failed_attempts SET count = greatest(count - 1, 0) WHERE key = $1', [this.rowKey(key)]);
  }

  /** Keys hold what a client sent (a username): hashed, any bytes (NUL included) fit in a text column. */
  private rowKey(key: string): string {
    return `${this.prefix}${createHash('sha256').update(key).digest('hex')}`;
  }

  async resetKey(key: string): Promise<void> {
    await this.db.query('DELETE FROM failed_attempts WHERE key = $1', [this.rowKey(key)]);
  }
}
