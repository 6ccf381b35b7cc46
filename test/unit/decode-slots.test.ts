import { describe, expect, it } from 'vitest';
import { DecodeSlots } from '../../src/inspection/decode-slots.js';

/** A piece of work that ends when the test says so. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  return { open, work: () => opened.then(() => 'done') };
}

describe('decode slots: what decoding uploads may cost', () => {
  it('refuses a station more than its share at once (429 with Retry-After), others still get in', async () => {
    const slots = new DecodeSlots(4, 2, 1000);
    const a = gate();
    const first = slots.run('cam-1', a.work);
    const second = slots.run('cam-1', a.work);
    await expect(slots.run('cam-1', a.work)).rejects.toThrow(expect.objectContaining({ name: 'TooManyRequestsError', code: 'station_decode_limit', retryAfterSeconds: 1 }));
    const other = slots.run('cam-2', async () => 'other');
    expect(await other).toBe('other');
    a.open();
    expect(await Promise.all([first, second])).toEqual(['done', 'done']);
    // Its share is free again.
    expect(await slots.run('cam-1', async () => 'again')).toBe('again');
  });

  it('makes uploads wait for a free decoder, in order, and answers 503 when the wait is too long', async () => {
    const slots = new DecodeSlots(1, 5, 50);
    const a = gate();
    const running = slots.run('cam-1', a.work);
    await expect(slots.run('cam-2', async () => 'late')).rejects.toThrow(expect.objectContaining({ name: 'OverloadedError', code: 'decoder_busy', retryAfterSeconds: 2 }));
    const queued = slots.run('cam-3', async () => 'next');
    a.open();
    expect(await running).toBe('done');
    expect(await queued).toBe('next');
  });

  it('frees its slot when the work fails', async () => {
    const slots = new DecodeSlots(1, 1, 50);
    await expect(slots.run('cam-1', async () => { throw new Error('corrupt'); })).rejects.toThrow('corrupt');
    expect(await slots.run('cam-1', async () => 'ok')).toBe('ok');
  });

  it('says when it is saturated: every decoder busy and an upload waiting for over a second', async () => {
    const slots = new DecodeSlots(1, 5, 5000);
    const a = gate();
    const running = slots.run('cam-1', a.work);
    expect(slots.saturation()).toBeNull();
    const waiting = slots.run('cam-2', async () => 'x');
    expect(slots.saturation()).toBeNull();
    expect(slots.saturation(Date.now() + 1500)).toMatch(/image decoding saturated: 1 uploads decoding, 1 waiting/);
    a.open();
    await Promise.all([running, waiting]);
    expect(slots.saturation(Date.now() + 1500)).toBeNull();
  });
});
