import pg from 'pg';
import type { Logger } from '../app/logger.js';

/** The advisory lock keys of the work that one process per database does (each a separate election). */
export const leaderLockKeys = {
  /** "visq": the MES link (outbox relay, station context, module state). */
  mesLink: 0x76697371,
  /** "visp": the image store's pruner. */
  pruner: 0x76697370,
} as const;

export interface LeadershipOptions {
  databaseUrl: string;
  lockKey: number;
  /** What is led, for logs and the connection's application_name: `MES link`, `image pruner`. */
  what: string;
  log: Logger;
  /** How often a process that does not lead tries again. */
  retryMs?: number;
  /** A channel to LISTEN on while leading (on the connection that holds the lock), and what its notifications do. */
  listen?: { channel: string; notified: (payload: string | undefined) => void };
  /** This process leads now: start the work. */
  lead(): Promise<void>;
  /** The leadership ended (the connection was lost, or stop()): stop the work. */
  resign(): Promise<void>;
}

/**
 * One leader per database for a piece of work, chosen by a PostgreSQL session-level advisory lock
 * held on a dedicated connection: whoever holds it leads; when that process dies or loses its
 * connection, PostgreSQL releases the lock and another process takes over at its next try.
 */
export class Leadership {
  private client: pg.Client | null = null;
  private isLeading = false;
  private stopping = false;
  private retry: NodeJS.Timeout | null = null;
  /** Until the first election has an answer, a process cannot say whether it leads. */
  private answered = false;

  constructor(private readonly o: LeadershipOptions) {}

  get leading(): boolean { return this.isLeading; }
  get electionAnswered(): boolean { return this.answered; }

  start(): void {
    this.attempt();
  }

  private attempt(): void {
    if (this.stopping) return;
    this.tryToLead().catch((err) => {
      this.o.log.warn({ err: err.message }, `cannot lead the ${this.o.what} yet; retrying`);
      void this.drop().finally(() => this.scheduleRetry());
    });
  }

  private scheduleRetry(): void {
    if (this.stopping || this.retry) return;
    this.retry = setTimeout(() => { this.retry = null; this.attempt(); }, this.o.retryMs ?? 3000);
  }

  private async tryToLead(): Promise<void> {
    const client = new pg.Client({ connectionString: this.o.databaseUrl, application_name: `visq-${this.o.what.toLowerCase().replaceAll(' ', '-')}` });
    client.on('error', (err) => {
      if (this.client !== client) return;
      this.o.log.warn({ err: err.message }, `lost the database connection of the ${this.o.what}; resigning`);
      void this.drop().finally(() => this.scheduleRetry());
    });
    this.client = client;
    await client.connect();
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [this.o.lockKey]);
    if (!got.rows[0]!.ok) {
      this.answered = true;
      await this.drop();
      this.scheduleRetry();
      return;
    }
    this.isLeading = true;
    const { listen } = this.o;
    if (listen) {
      await client.query(`LISTEN ${listen.channel}`);
      client.on('notification', (n) => listen.notified(n.payload));
    }
    await this.o.lead();
    this.answered = true;
    this.o.log.info(`leading the ${this.o.what}`);
  }

  private async drop(): Promise<void> {
    if (this.isLeading) {
      this.isLeading = false;
      // Resigning: the work's own errors were logged where they happened.
      await this.o.resign().catch(() => {});
    }
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {}); // a connection already lost has nothing to end
  }

  /** Stops the work and lets another process lead. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retry) clearTimeout(this.retry);
    await this.drop();
  }
}

/**
 * Runs `work` while holding the leader lock `lockKey` (a one-off run from the command line, as the
 * leader would); null, without running it, when another process leads.
 */
export async function whileLeading<T>(databaseUrl: string, lockKey: number, work: () => Promise<T>): Promise<T | null> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'visq-cli' });
  await client.connect();
  try {
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [lockKey]);
    if (!got.rows[0]!.ok) return null;
    return await work();
  } finally {
    // Closing the connection releases the lock.
    await client.end().catch(() => {});
  }
}
