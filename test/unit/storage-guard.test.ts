import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/app/logger.js';
import { StorageGuard } from '../../src/images/storage-guard.js';

/** A guard over a store the test sizes, on a 10,000-byte volume: quota 1,000, high watermark 900, floor 500 bytes free. */
function guard(o: { stored: number; free?: number }) {
  const state = { stored: o.stored, free: o.free ?? 9000, reads: 0, wakes: [] as string[] };
  const g = new StorageGuard({
    estimateStoredBytes: async () => { state.reads++; return state.stored; },
    volume: async () => ({ totalBytes: 10_000, freeBytes: state.free }),
    wakePruner: async (why) => { state.wakes.push(why); },
    settings: { quota: { bytes: 1000 }, highWatermarkPercent: 90, lowWatermarkPercent: 80, minFree: { bytes: 500 } },
    log: createLogger('silent', {}, 2),
  });
  return { g, state };
}

describe('refusing uploads before the disk is exhausted', () => {
  it('lets uploads in while they fit the quota, counting each until it reads the store again', async () => {
    const { g, state } = guard({ stored: 500 });
    // Each upload is recorded once let in: the store's next reading includes it.
    for (const bytes of [300, 200]) {
      await g.check(bytes);
      state.stored += bytes;
    }
    // 500 + 300 + 200 = 1000: the quota is full, whether or not the store was read again meanwhile.
    await expect(g.check(1)).rejects.toMatchObject({ name: 'InsufficientStorageError', code: 'insufficient_storage', retryAfterSeconds: 10 });
    expect(state.reads).toBeGreaterThanOrEqual(1);
  });

  it('looks again before refusing: the pruner may just have made room', async () => {
    const { g, state } = guard({ stored: 990 });
    await expect(g.check(20)).rejects.toThrow(/holds 990 B of its 1000 B quota \(VISQ_STORAGE_QUOTA\) and has no room for 20 B more/);
    state.stored = 700;
    await new Promise((r) => setTimeout(r, 250));
    await g.check(20);
  });

  it('refuses when the volume would fall below its free-space floor, whatever the quota', async () => {
    const { g, state } = guard({ stored: 0, free: 520 });
    await g.check(10);
    state.free -= 10; // written: the volume's next reading shows it
    await expect(g.check(20)).rejects.toThrow(/the volume of the image store has 510 B free, below its floor of 500 B \(VISQ_STORAGE_MIN_FREE\)/);
  });

  it('wakes the pruner once an upload recorded takes the store past its high watermark, and when it refuses one', async () => {
    const { g, state } = guard({ stored: 850 });
    await g.check(40);
    await g.recorded();
    expect(state.wakes).toEqual([]);
    await g.check(20);
    expect(state.wakes).toEqual([]);
    await g.recorded();
    expect(state.wakes).toEqual(['high_watermark']);
    await expect(g.check(200)).rejects.toThrow(/no room/);
    expect(state.wakes).toEqual(['high_watermark', 'refused']);
  });

  it('wakes the pruner before the next upload like the last one would be refused, below the high watermark too', async () => {
    const { g, state } = guard({ stored: 300 });
    await g.check(200);
    await g.recorded();
    expect(state.wakes).toEqual([]);
    await g.check(380);
    await g.recorded();
    // 880 stored: under the high watermark (900), but another 380 would pass the quota (1000).
    expect(state.wakes).toEqual(['high_watermark']);
  });

  it('/readyz names the reason while uploads are refused', async () => {
    expect(await guard({ stored: 999 }).g.readiness()).toBeNull();
    expect(await guard({ stored: 1001 }).g.readiness()).toMatch(/^uploads are refused \(507\): the image store holds 1001 B of its 1000 B quota/);
    expect(await guard({ stored: 0, free: 499 }).g.readiness()).toMatch(/^uploads are refused \(507\): the volume of the image store has 499 B free/);
    // Under the quota, but an upload like the last one refused would still not fit: not ready, until it would.
    const { g, state } = guard({ stored: 950 });
    await expect(g.check(100)).rejects.toThrow(/no room for 100 B more/);
    expect(await g.readiness()).toMatch(/^uploads are refused \(507\): the image store holds 950 B of its 1000 B quota/);
    state.stored = 800;
    await new Promise((r) => setTimeout(r, 1100));
    expect(await g.readiness()).toBeNull();
  });
});
