import { createHash } from 'node:crypto';
import os from 'node:os';
import type { Logger } from '../app/logger.js';
import type { Database, Transaction } from '../db/database.js';
import { Leadership, leaderLockKeys } from '../db/leadership.js';
import {
  deferFiles, listFileFacts, listPoolFiles, listPreparedFiles, listUnlinkPending, listUnsized, lockLotsOf, markPreparedRemoved, markUnlinked,
  measureStore, readStorageUsage, recordPruneRun, recordRemovals, recordSizes, releaseDeferrals, storedLastDay, tryLockFiles, unlockFiles,
  writeStorageUsage, type PoolCursor, type StorageUsage,
} from '../db/stored-files.js';
import type { PreparedInputs } from '../inference/prepared-inputs.js';
import { volumeOf, type ImageStore } from './image-store.js';
import { storageRetryAfterSeconds } from './storage-guard.js';
import {
  agesOf, bytesToFree, formatDuration, planPruning, retentionClasses, storageClasses, storageLimits, watermarkText,
  type PrunePlan, type Removal, type RetentionPolicy, type StorageClass, type StorageSettings, type StoredFileFacts,
} from './retention.js';

export interface PrunerOptions {
  db: Database;
  images: ImageStore;
  prepared: PreparedInputs;
  /** The image store's folder: its volume is what the quota's percentages and the free-space floor refer to. */
  imageDir: string;
  settings: StorageSettings & { retention: RetentionPolicy };
  log: Logger;
  /** Who prunes, in prune_runs and the audit trail. */
  process?: string;
}

type Tally = Partial<Record<StorageClass, { files: number; bytes: number }>>;

export interface PruneReport {
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  /** The store (files and prepared inputs) before the run, and after it (for a dry run: what it would be). */
  storedBytes: { before: number; after: number };
  limits: { quotaBytes: number; highWatermarkBytes: number; lowWatermarkBytes: number };
  /** What had to be freed to get from above the high watermark down to the low one, and what could not be. */
  bytesToFree: number;
  shortBytes: number;
  removed: { files: number; bytes: number; byClass: Tally };
  /** Why files past their class's shortest minimum age were kept, and how many. */
  kept: Record<string, number>;
  /** The first removals, in order (a dry run's preview). */
  first: Omit<Removal, 'bytes'>[];
}

/** Where a stored-file sha256 is, for logs and reports: the first 12 hex digits. */
const short = (sha: string) => sha.slice(0, 12);
const pageSize = 200;

/** Identifies a retention policy: when it changes, files deferred under the old one are looked at again. */
export function policyFingerprint(policy: RetentionPolicy): string {
  return createHash('sha256').update(JSON.stringify(policy)).digest('hex').slice(0, 16);
}

/**
 * Keeps the image store within its quota by the retention policy (retention.ts), safely: a
 * removal is recorded in PostgreSQL before its file is unlinked, under the file's exclusive lock,
 * so a pruner killed at any point leaves at worst a recorded removal whose file still exists
 * (finished at the next run), never a missing file without its note; and an upload of the same
 * bytes meanwhile waits for the lock and stores the file again (stored-files.ts).
 */
export class Pruner {
  private readonly log: Logger;
  private readonly process: string;

  constructor(private readonly o: PrunerOptions) {
    this.log = o.log.child({ component: 'pruner' });
    this.process = o.process ?? `${os.hostname()}:${process.pid}`;
  }

  /**
   * One run: finishes interrupted removals, then removes prepared inputs and files as the policy
   * says (a dry run decides the same and changes nothing). `keepGoing` is asked between pages.
   */
  async prune(o: { dryRun: boolean; keepGoing?: () => boolean; woken?: boolean }): Promise<PruneReport> {
    const { db, settings } = this.o;
    const policy = settings.retention;
    const keepGoing = o.keepGoing ?? (() => true);
    const startedAt = new Date();
    const fingerprint = policyFingerprint(policy);
    let previous: StorageUsage | null = null;
    if (!o.dryRun) {
      await this.finishPendingUnlinks();
      await this.sizeUnsized();
      previous = await readStorageUsage(db);
      await releaseDeferrals(db, previous !== null && previous.policyFingerprint !== fingerprint);
    }
    const limits = storageLimits(settings, (await volumeOf(this.o.imageDir)).totalBytes);
    const before = await measureStore(db);
    const storedBefore = total(before.classes);
    const initialToFree = bytesToFree(storedBefore, limits, o.woken);
    const now = new Date();
    const run = { toFree: initialToFree, removed: {} as Tally, kept: {} as Record<string, number>, first: [] as Omit<Removal, 'bytes'>[], seen: new Set<string>() };
    const plan = (files: StoredFileFacts[], prepared: Parameters<typeof planPruning>[0]['prepared']) =>
      planPruning({ policy, now, bytesToFree: run.toFree, watermarkText: watermarkText(settings, limits), prepared, files });
    const count = (removals: readonly Removal[], p: PrunePlan | null) => {
      for (const r of removals) {
        const t = (run.removed[r.class] ??= { files: 0, bytes: 0 });
        t.files++;
        t.bytes += r.bytes;
        run.toFree -= r.bytes;
        if (run.first.length < 20) run.first.push({ sha256: r.sha256, what: r.what, class: r.class, policy: r.policy, reason: r.reason });
      }
      for (const d of p?.deferrals ?? []) run.kept[d.why] = (run.kept[d.why] ?? 0) + 1;
    };

    // 1. Prepared model inputs: past their maximum age always, and all that may go while the store must shrink.
    const prepared = policy.prepared;
    const preparedCutoff = run.toFree > 0 ? prepared.minSeconds : prepared.maxSeconds;
    if (preparedCutoff !== null) {
      let cursor: PoolCursor | null = null;
      while (keepGoing()) {
        const page = await listPreparedFiles(db, { olderThan: ago(now, preparedCutoff), cursor, limit: pageSize });
        if (page.length === 0) break;
        cursor = page[page.length - 1]!.cursor;
        const p = plan([], page);
        if (o.dryRun) count(p.removals, null);
        else {
          const marked = new Map((await markPreparedRemoved(db, p.removals.map((r) => r.sha256))).map((m) => [m.sha256, m.preparedKeys]));
          for (const [sha, keys] of marked) await this.o.prepared.remove(sha, keys);
          count(p.removals.filter((r) => marked.has(r.sha256)), null);
        }
        const lastAt = page[page.length - 1]!.storedAt.getTime();
        if (run.toFree <= 0 && (prepared.maxSeconds === null || lastAt > ago(now, prepared.maxSeconds).getTime())) break;
      }
    }

    // 2. Files, oldest first, while the store must shrink.
    const removePage = async (shas: string[]) => {
      const p = await this.removeFiles(shas, o.dryRun, run.seen, (facts) => plan(facts, []));
      count(p.removals, p);
    };
    if (run.toFree > 0) {
      const shortestMin = Math.min(...retentionClasses.map((c) => agesOf(policy, c).minSeconds));
      await this.walk({ olderThan: ago(now, shortestMin) }, async (shas) => {
        await removePage(shas);
        return run.toFree > 0 && keepGoing();
      });
    }

    // 3. Files past their class's maximum age, whatever the watermark.
    for (const c of retentionClasses) {
      const max = agesOf(policy, c).maxSeconds;
      if (max === null || !keepGoing()) continue;
      await this.walk({ olderThan: ago(now, max), retentionClass: c }, async (shas) => {
        await removePage(shas);
        return keepGoing();
      });
    }

    const removedFiles = Object.values(run.removed).reduce((n, t) => n + t.files, 0);
    const removedBytes = Object.values(run.removed).reduce((n, t) => n + t.bytes, 0);
    let storedAfter = storedBefore - removedBytes;
    if (!o.dryRun) storedAfter = await this.recordRun(fingerprint, previous, run.removed, { files: removedFiles, bytes: removedBytes }, startedAt);
    const report: PruneReport = {
      dryRun: o.dryRun,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      storedBytes: { before: storedBefore, after: storedAfter },
      limits: { quotaBytes: limits.quotaBytes, highWatermarkBytes: limits.highBytes, lowWatermarkBytes: limits.lowBytes },
      bytesToFree: initialToFree,
      shortBytes: Math.max(0, run.toFree),
      removed: { files: removedFiles, bytes: removedBytes, byClass: run.removed },
      kept: run.kept,
      first: run.first,
    };
    return report;
  }

  /** Walks the files the pruner has not deferred, oldest first, a page at a time, while `page` says so. */
  private async walk(o: { olderThan: Date; retentionClass?: (typeof retentionClasses)[number] }, page: (shas: string[]) => Promise<boolean>): Promise<void> {
    let cursor: PoolCursor | null = null;
    for (;;) {
      const rows = await listPoolFiles(this.o.db, { ...o, cursor, limit: pageSize });
      if (rows.length === 0) return;
      cursor = rows[rows.length - 1]!.cursor;
      if (!(await page(rows.map((r) => r.sha256)))) return;
    }
  }

  /**
   * Decides on a page of files under their exclusive locks and the share locks of their lots,
   * records the removals and deferrals, commits, and only then unlinks. Files whose lock is held
   * (an upload of the same bytes in progress) are left for the next run. Returns what was done.
   */
  private async removeFiles(shas: string[], dryRun: boolean, seen: Set<string>, decide: (facts: StoredFileFacts[]) => PrunePlan): Promise<PrunePlan> {
    const fresh = shas.filter((s) => !seen.has(s));
    for (const s of fresh) seen.add(s);
    if (fresh.length === 0) return { removals: [], deferrals: [], bytesToFree: 0 };
    if (dryRun) return decide(await listFileFacts(this.o.db, fresh));
    const client = await this.o.db.connect();
    let broken: Error | undefined;
    try {
      const { locked, ids } = await tryLockFiles(client, fresh);
      try {
        let p: PrunePlan;
        let marked: { sha256: string; preparedKeys: string[] }[];
        await client.query('BEGIN');
        try {
          await lockLotsOf(client, locked);
          p = decide(await listFileFacts(client, locked));
          marked = await recordRemovals(client, p.removals);
          await deferFiles(client, p.deferrals);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {}); // the transaction's own error is the one to report
          throw err;
        }
        // Recorded: now the files may go. A kill from here on leaves removals whose unlink the next run finishes.
        await this.unlink(client, marked);
        const done = new Set(marked.map((m) => m.sha256));
        return { ...p, removals: p.removals.filter((r) => done.has(r.sha256)) };
      } finally {
        await unlockFiles(client, ids);
      }
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      // A connection in an unknown state may still hold file locks: it is closed rather than reused.
      client.release(broken);
    }
  }

  private async unlink(client: Transaction, files: readonly { sha256: string; preparedKeys: string[] }[]): Promise<void> {
    for (const f of files) {
      await this.o.images.remove(f.sha256);
      await this.o.prepared.remove(f.sha256, f.preparedKeys);
    }
    await markUnlinked(client, files.map((f) => f.sha256));
    if (files.length) this.log.debug({ files: files.map((f) => short(f.sha256)) }, 'files removed');
  }

  /** Removals recorded by a pruner that was killed before it unlinked them: unlinked now, under the same locks. */
  private async finishPendingUnlinks(): Promise<void> {
    for (;;) {
      const pending = await listUnlinkPending(this.o.db, pageSize);
      if (pending.length === 0) return;
      const client = await this.o.db.connect();
      let broken: Error | undefined;
      try {
        const { locked, ids } = await tryLockFiles(client, pending.map((p) => p.sha256));
        try {
          // Still removed now that the lock is held (an upload may have stored the bytes again).
          const still = new Set((await listUnlinkPending(client, pageSize, locked)).map((p) => p.sha256));
          await this.unlink(client, pending.filter((p) => still.has(p.sha256)));
        } finally {
          await unlockFiles(client, ids);
        }
        if (locked.length < pending.length) return; // the rest waits for the next run
      } catch (err) {
        broken = err as Error;
        throw err;
      } finally {
        client.release(broken);
      }
    }
  }

  /** Prepared pixels from before visq tracked them, and temporary files of killed writers (at a leader's start). */
  async sweepPrepared(): Promise<void> {
    const max = this.o.settings.retention.prepared.maxSeconds;
    await this.o.prepared.sweep(new Date(Date.now() - (max ?? 3600) * 1000), max !== null);
  }

  /** Files stored before visq recorded sizes are measured once. */
  private async sizeUnsized(): Promise<void> {
    for (;;) {
      const shas = await listUnsized(this.o.db, 1000);
      if (shas.length === 0) return;
      const sizes = [];
      for (const sha256 of shas) sizes.push({ sha256, bytes: (await this.o.images.sizeOf(sha256)) ?? 0 });
      await recordSizes(this.o.db, sizes);
    }
  }

  /**
   * Measures the store again and writes what every process reads (uploads, /readyz, /metrics),
   * adding this run's removals to the totals of `previous` (read at the run's start: only the
   * leader writes it); returns the bytes stored.
   */
  private async recordRun(fingerprint: string, previous: StorageUsage | null, removed: Tally, totals: { files: number; bytes: number }, startedAt: Date): Promise<number> {
    const { db } = this.o;
    const after = await measureStore(db);
    const classes: StorageUsage['classes'] = {};
    for (const c of storageClasses) {
      const pruned = previous?.classes[c];
      const now = after.classes[c];
      const prunedFiles = (pruned?.prunedFiles ?? 0) + (removed[c]?.files ?? 0);
      const prunedBytes = (pruned?.prunedBytes ?? 0) + (removed[c]?.bytes ?? 0);
      if (now || prunedFiles) classes[c] = { files: now?.files ?? 0, bytes: now?.bytes ?? 0, oldest: now?.oldest ?? null, prunedFiles, prunedBytes };
    }
    const storedBytes = total(after.classes);
    await writeStorageUsage(db, { computedAt: after.at, storedBytes, window: after.window, classes, policyFingerprint: fingerprint });
    await recordPruneRun(db, { process: this.process, startedAt, finishedAt: new Date(), ...totals, byClass: removed });
    return storedBytes;
  }

  /** `visq storage status`: bytes and oldest file per class, the quota, and how soon it is reached at the current rate. */
  async status(): Promise<StorageStatus> {
    const { db, settings } = this.o;
    const volume = await volumeOf(this.o.imageDir);
    const limits = storageLimits(settings, volume.totalBytes);
    const [measured, lastDay, usage] = await Promise.all([measureStore(db), storedLastDay(db), readStorageUsage(db)]);
    const storedBytes = total(measured.classes);
    // The rate over the last day, or since the store began filling when that is less than a day ago.
    const windowDays = lastDay.since ? Math.min(1, Math.max(1 / 1440, (Date.now() - Date.parse(lastDay.since)) / 86_400_000)) : 1;
    const bytesPerDay = Math.round(Object.values(lastDay.classes).reduce((n, b) => n + b, 0) / windowDays);
    const classes: StorageStatus['classes'] = {};
    for (const c of storageClasses) {
      const m = measured.classes[c];
      const u = usage?.classes[c];
      if (!m && !u?.prunedFiles && !lastDay.classes[c]) continue;
      classes[c] = {
        files: m?.files ?? 0, bytes: m?.bytes ?? 0, oldest: m?.oldest ?? null,
        bytesPerDay: Math.round((lastDay.classes[c] ?? 0) / windowDays),
        prunedFiles: u?.prunedFiles ?? 0, prunedBytes: u?.prunedBytes ?? 0,
      };
    }
    const policy = settings.retention;
    const describe = (c: (typeof retentionClasses)[number] | 'prepared') => {
      const a = c === 'prepared' ? policy.prepared : agesOf(policy, c);
      return { minAge: formatDuration(a.minSeconds), maxAge: a.maxSeconds === null ? null : formatDuration(a.maxSeconds) };
    };
    return {
      imageDir: this.o.imageDir,
      volume,
      quotaBytes: limits.quotaBytes,
      highWatermarkBytes: limits.highBytes,
      lowWatermarkBytes: limits.lowBytes,
      minFreeBytes: limits.minFreeBytes,
      storedBytes,
      percentOfQuota: limits.quotaBytes ? Math.round((storedBytes / limits.quotaBytes) * 1000) / 10 : null,
      classes,
      bytesPerDay,
      projectedDaysToQuota: bytesPerDay > 0 ? Math.round((Math.max(0, limits.quotaBytes - storedBytes) / bytesPerDay) * 10) / 10 : null,
      retention: { pass: describe('pass'), fail: describe('fail'), disposed: describe('disposed'), overlay: describe('overlay'), prepared: describe('prepared') },
      lastMeasuredByPruner: usage?.computedAt ?? null,
    };
  }
}

export interface StorageStatus {
  imageDir: string;
  volume: { totalBytes: number; freeBytes: number };
  quotaBytes: number;
  highWatermarkBytes: number;
  lowWatermarkBytes: number;
  minFreeBytes: number;
  storedBytes: number;
  percentOfQuota: number | null;
  classes: Partial<Record<StorageClass, { files: number; bytes: number; oldest: string | null; bytesPerDay: number; prunedFiles: number; prunedBytes: number }>>;
  /** Bytes stored per day lately (over the last day), and the days until the quota at that rate were nothing removed. */
  bytesPerDay: number;
  projectedDaysToQuota: number | null;
  retention: Record<string, { minAge: string; maxAge: string | null }>;
  lastMeasuredByPruner: string | null;
}

const total = (classes: Partial<Record<StorageClass, { bytes: number }>>) => Object.values(classes).reduce((n, c) => n + c.bytes, 0);
const ago = (now: Date, seconds: number) => new Date(now.getTime() - seconds * 1000);

/**
 * The pruner as one process per database runs it (leader-elected like the MES link, with its own
 * lock): a run at start, then every `intervalSeconds`, and soon when an upload finds the store
 * over its high watermark or is refused, at once when a lot or a pin is released (`visq_storage`
 * notifications).
 */
export class PrunerService {
  private readonly leadership: Leadership;
  private readonly log: Logger;
  private loop: Promise<void> | null = null;
  /** Ends the wait between runs: after the rest, or at once (`now`: a hold or pin released, or stopping). */
  private wake: ((now: boolean) => void) | null = null;
  /** Woken since the last run began (see bytesToFree); by a released hold or pin. */
  private woken = false;
  private released = false;
  private warned = 0;

  constructor(private readonly pruner: Pruner, private readonly o: { databaseUrl: string; intervalSeconds: number; log: Logger }) {
    this.log = o.log.child({ component: 'pruner' });
    this.leadership = new Leadership({
      databaseUrl: o.databaseUrl,
      lockKey: leaderLockKeys.pruner,
      what: 'image pruner',
      log: this.log,
      listen: {
        channel: 'visq_storage',
        notified: (why) => {
          this.woken = true;
          this.released ||= why === 'released';
          this.wake?.(why === 'released');
        },
      },
      lead: async () => {
        this.loop = this.run();
      },
      resign: async () => {
        this.wake?.(true);
        await this.loop?.catch(() => {}); // its errors were logged in the loop
        this.loop = null;
      },
    });
  }

  start(): void {
    this.leadership.start();
  }

  private async run(): Promise<void> {
    await this.pruner.sweepPrepared().catch((err: Error) => this.log.warn({ err: err.message }, 'cannot sweep the prepared inputs'));
    while (this.leadership.leading) {
      const woken = this.woken;
      this.woken = false;
      this.released = false;
      const started = Date.now();
      let stuck = false;
      try {
        const r = await this.pruner.prune({ dryRun: false, keepGoing: () => this.leadership.leading, woken });
        if (r.removed.files) this.log.info({ removed: r.removed, storedBytes: r.storedBytes, quotaBytes: r.limits.quotaBytes }, 'image store pruned');
        stuck = r.shortBytes > 0 && r.removed.files === 0;
        if (r.shortBytes > 0 && Date.now() - this.warned > 60_000) {
          this.warned = Date.now();
          this.log.warn({ shortBytes: r.shortBytes, kept: r.kept, quotaBytes: r.limits.quotaBytes },
            'the retention policy allows no more removals: the image store stays over its low watermark (uploads get 507 at the quota; see visq storage status)');
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'pruning run failed; retrying at the next one');
      }
      // Woken again and again, it rests at least as long as a run took (a large store's measure is
      // no small query), and as long as a refused upload waits when the last run could remove nothing.
      const rest = Math.max(Date.now() - started, stuck ? storageRetryAfterSeconds * 1000 : 0);
      if (this.leadership.leading) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.o.intervalSeconds * 1000);
          let rested: NodeJS.Timeout | undefined;
          this.wake = (now) => {
            clearTimeout(timer);
            if (now) {
              clearTimeout(rested);
              resolve();
            } else rested ??= setTimeout(resolve, rest);
          };
          if (this.woken) this.wake(this.released);
        });
      }
      this.wake = null;
    }
  }

  async stop(): Promise<void> {
    await this.leadership.stop();
  }
}
