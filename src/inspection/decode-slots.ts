import { OverloadedError, TooManyRequestsError } from '../errors.js';

/**
 * Bounds what decoding uploads may cost an API process: at most `total` uploads are decoded at
 * once (the rest wait up to `maxWaitMs`, then get 503), and at most `perStation` of one station's
 * (more get 429 at once). Decoding runs on libuv's thread pool, which sign-in's password hashing
 * shares: without a bound, one camera's large images keep people from signing in.
 */
export class DecodeSlots {
  private busy = 0;
  private readonly perStationNow = new Map<string, number>();
  private readonly waiting: { since: number; grant: () => void }[] = [];

  constructor(private readonly total: number, private readonly perStation: number, private readonly maxWaitMs: number) {}

  async run<T>(stationId: string, work: () => Promise<T>): Promise<T> {
    const mine = this.perStationNow.get(stationId) ?? 0;
    if (mine >= this.perStation) {
      throw new TooManyRequestsError('station_decode_limit', `this station already has ${mine} upload${mine === 1 ? '' : 's'} being decoded (at most ${this.perStation} at once); retry in a second`, 1);
    }
    this.perStationNow.set(stationId, mine + 1);
    try {
      await this.acquire();
      try {
        return await work();
      } finally {
        this.release();
      }
    } finally {
      const left = (this.perStationNow.get(stationId) ?? 1) - 1;
      if (left) this.perStationNow.set(stationId, left);
      else this.perStationNow.delete(stationId);
    }
  }

  /** For readiness: why uploads are being turned away or kept waiting, or null. */
  saturation(now = Date.now()): string | null {
    const oldest = this.waiting[0];
    if (this.busy < this.total || !oldest || now - oldest.since < 1000) return null;
    return `image decoding saturated: ${this.busy} uploads decoding, ${this.waiting.length} waiting (the oldest ${Math.round((now - oldest.since) / 1000)} s)`;
  }

  private acquire(): Promise<void> {
    if (this.busy < this.total) {
      this.busy++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const entry = { since: Date.now(), grant: () => { clearTimeout(timer); resolve(); } };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        reject(new OverloadedError(`every image decoder has been busy for ${this.maxWaitMs} ms; retry later`, 2, 'decoder_busy'));
      }, this.maxWaitMs);
      this.waiting.push(entry);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter: `busy` stays as it is.
    if (next) next.grant();
    else this.busy--;
  }
}
