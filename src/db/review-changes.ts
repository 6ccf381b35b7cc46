import pg from 'pg';
import type { Logger } from '../app/logger.js';

/** `resync`: notifications may have been missed (the listening connection was lost); refetch. */
export interface ReviewChange { id: string | null; change: 'flagged' | 'disposed' | 'resync' }

interface Subscriber { send: (change: ReviewChange) => void; close: () => void }

/**
 * Fans out the database's `visq_review` notifications (raised by triggers when an inspection is
 * flagged or disposed, by any process on any host) to this API process's live review queues.
 */
export class ReviewChanges {
  private readonly subscribers = new Set<Subscriber>();
  private client: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly databaseUrl: string, private readonly log: Logger) {}

  start(): void {
    void this.listen(false);
  }

  subscribe(send: Subscriber['send'], close: Subscriber['close']): () => void {
    // A browser reconnecting while the process stops is sent away at once.
    if (this.stopped) {
      close();
      return () => {};
    }
    const s = { send, close };
    this.subscribers.add(s);
    return () => { this.subscribers.delete(s); };
  }

  /** Ends every live stream, so the HTTP server can close. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    for (const s of this.subscribers) s.close();
    this.subscribers.clear();
    await this.client?.end().catch(() => {}); // stopping: a connection that is already gone is fine
  }

  private emit(change: ReviewChange): void {
    for (const s of this.subscribers) s.send(change);
  }

  private async listen(reconnecting: boolean): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl, application_name: 'visq-review-changes' });
    const lost = (err?: Error) => {
      if (this.client !== client || this.stopped) return;
      this.client = null;
      this.log.warn({ err: err?.message }, 'lost the review notification connection; reconnecting');
      client.end().catch(() => {}); // the connection is lost already; a new one follows
      this.retry = setTimeout(() => void this.listen(true), 2000);
    };
    this.client = client;
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (msg) => {
      try {
        this.emit(JSON.parse(msg.payload ?? ''));
      } catch {
        this.emit({ id: null, change: 'resync' });
      }
    });
    try {
      await client.connect();
      await client.query('LISTEN visq_review');
      if (reconnecting) this.emit({ id: null, change: 'resync' });
    } catch (err) {
      lost(err as Error);
    }
  }
}
