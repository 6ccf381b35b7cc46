import type { Logger } from '../app/logger.js';
import { InsufficientStorageError } from '../errors.js';
import type { Volume } from './image-store.js';
import { formatBytes, storageLimits, type StorageLimits, type StorageSettings } from './retention.js';

export interface StorageGuardDeps {
  /** The store's size as the pruner last measured it plus what was stored since (stored-files.ts estimateStoredBytes). */
  estimateStoredBytes(): Promise<number>;
  volume(): Promise<Volume>;
  /** Tells the pruner (whichever process leads it) to run now: the store passed its high watermark, or an upload was refused. */
  wakePruner(why: 'high_watermark' | 'refused'): Promise<void>;
  settings: StorageSettings;
  log: Logger;
}

interface State { readAt: number; storedBytes: number; volume: Volume; limits: StorageLimits }

/** How long a refused upload should wait: the pruner is woken at once, and a run takes seconds. */
export const storageRetryAfterSeconds = 10;

/**
 * Refuses uploads before the disk is exhausted (507 with Retry-After), before anything is written:
 * when the image store would pass its quota, or the volume would fall below its free-space floor.
 * It reads the store's size at most once a second and counts what this process lets in meanwhile;
 * before refusing it looks again. An upload recorded with the store over its high watermark wakes
 * the pruner; so does a refused one (then the pruner makes room down to the low watermark, whatever
 * the high one).
 */
export class StorageGuard {
  private state: State | null = null;
  private reading: Promise<State> | null = null;
  /** Bytes this process let in since `state` was read, and the size of the last upload let in. */
  private pending = 0;
  private lastIncoming = 0;
  private readonly lastWake = { high_watermark: 0, refused: 0 };
  private readonly trailing: Partial<Record<'high_watermark' | 'refused', NodeJS.Timeout>> = {};
  /** The last upload refused, so that /readyz says so while one like it would still be. */
  private refused: { bytes: number; at: number } | null = null;

  constructor(private readonly deps: StorageGuardDeps) {}

  private async read(maxAgeMs: number): Promise<State> {
    if (this.state && Date.now() - this.state.readAt < maxAgeMs) return this.state;
    this.reading ??= (async () => {
      const [storedBytes, volume] = await Promise.all([this.deps.estimateStoredBytes(), this.deps.volume()]);
      this.pending = 0;
      this.state = { readAt: Date.now(), storedBytes, volume, limits: storageLimits(this.deps.settings, volume.totalBytes) };
      return this.state;
    })().finally(() => { this.reading = null; });
    return this.reading;
  }

  private problem(s: State, incoming: number): string | null {
    const stored = s.storedBytes + this.pending;
    if (stored + incoming > s.limits.quotaBytes) {
      return `the image store holds ${formatBytes(stored)} of its ${formatBytes(s.limits.quotaBytes)} quota (VISQ_STORAGE_QUOTA) and has no room for ${formatBytes(incoming)} more; ` +
        'the pruner removes what the retention policy allows (see visq storage status)';
    }
    const free = s.volume.freeBytes - this.pending;
    if (free - incoming < s.limits.minFreeBytes) {
      return `the volume of the image store has ${formatBytes(free)} free, below its floor of ${formatBytes(s.limits.minFreeBytes)} (VISQ_STORAGE_MIN_FREE)`;
    }
    return null;
  }

  /** Throws InsufficientStorageError when `incomingBytes` more do not fit; else counts them in. */
  async check(incomingBytes: number): Promise<void> {
    let s = await this.read(1000);
    let problem = this.problem(s, incomingBytes);
    // A refusal is worth a fresh look (one query): the pruner may just have made room.
    if (problem) problem = this.problem((s = await this.read(0)), incomingBytes);
    if (problem) {
      this.refused = { bytes: incomingBytes, at: Date.now() };
      this.wake('refused');
      throw new InsufficientStorageError(`${problem}; retry later`, storageRetryAfterSeconds);
    }
    this.pending += incomingBytes;
    this.lastIncoming = incomingBytes;
  }

  /**
   * After an upload was recorded (so that the pruner sees it): wakes the pruner when the store is
   * over its high watermark, or when another upload like this one would not fit under the quota.
   */
  async recorded(): Promise<void> {
    const s = await this.read(1000);
    const stored = s.storedBytes + this.pending;
    if (stored > s.limits.highBytes || stored + this.lastIncoming > s.limits.quotaBytes) this.wake('high_watermark');
  }

  /** For /readyz: null while uploads are taken, else why they are refused (as the last refused one would be now, within a minute). */
  async readiness(): Promise<string | null> {
    const s = await this.read(1000);
    const recent = this.refused && Date.now() - this.refused.at < 60_000 ? this.refused.bytes : 0;
    const problem = this.problem(s, 0) ?? (recent ? this.problem(s, recent) : null);
    return problem ? `uploads are refused (507): ${problem}` : null;
  }

  /** At most one notification per reason each 50 ms: one at once, and one at the end of the 50 ms for what came meanwhile. */
  private wake(why: 'high_watermark' | 'refused'): void {
    const wait = this.lastWake[why] + 50 - Date.now();
    if (wait > 0) {
      this.trailing[why] ??= setTimeout(() => { this.trailing[why] = undefined; this.wake(why); }, wait).unref();
      return;
    }
    this.lastWake[why] = Date.now();
    this.deps.wakePruner(why).catch((err: Error) => this.deps.log.warn({ err: err.message }, 'cannot wake the image pruner'));
  }
}
