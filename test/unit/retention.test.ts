import { describe, expect, it } from 'vitest';
import {
  bytesToFree, classOf, fileRetention, formatBytes, formatDuration, parseDuration, parseSize, planPruning, stateRecheckSeconds, storageLimits,
  type FileReference, type PreparedCandidate, type RetentionPolicy, type StoredFileFacts,
} from '../../src/images/retention.js';

const day = 86400;
const now = new Date('2025-06-01T12:00:00Z');
const daysAgo = (d: number) => new Date(now.getTime() - d * day * 1000);
const policy: RetentionPolicy = {
  pass: { minSeconds: 7 * day, maxSeconds: 90 * day },
  fail: { minSeconds: 365 * day, maxSeconds: null },
  disposed: { minSeconds: 365 * day, maxSeconds: null },
  overlay: { minSeconds: 30 * day, maxSeconds: null },
  prepared: { minSeconds: 0, maxSeconds: 3600 },
};

const ref = (over: Partial<FileReference> = {}): FileReference => ({
  as: 'image', state: 'decided', class: 'pass', at: daysAgo(10), lotHeld: false, viewPinned: false, ...over,
});
let n = 0;
const file = (refs: FileReference[], over: Partial<StoredFileFacts> = {}): StoredFileFacts => ({
  sha256: `f${String(++n).padStart(3, '0')}`, bytes: 100, storedAt: refs.reduce((a, r) => (r.at > a ? r.at : a), new Date(0)), pinned: false, refs, ...over,
});

describe('which stored files the retention policy lets go', () => {
  it.each([
    ['a pinned image', file([ref()], { pinned: true }), 'pinned by a person'],
    ['an image of an undecided inspection, however old', file([ref({ state: 'undecided', class: null, at: daysAgo(400) })]), 'an inspection using it is not decided yet'],
    ['an image awaiting review', file([ref({ state: 'awaiting_review', class: 'review', at: daysAgo(400) })]), 'an inspection using it awaits review'],
    ['an image in a held lot', file([ref({ lotHeld: true, at: daysAgo(400) })]), 'its lot is on hold'],
    ['an overlay whose view image is pinned', file([ref({ as: 'overlay', viewPinned: true, at: daysAgo(400) })]), 'the image of its view is pinned'],
    ['a shared image: one old PASS, one inspection undecided', file([ref({ at: daysAgo(100) }), ref({ state: 'undecided', class: null, at: daysAgo(0) })]), 'an inspection using it is not decided yet'],
    ['a shared image: one of its inspections in a held lot', file([ref({ at: daysAgo(100) }), ref({ at: daysAgo(100), lotHeld: true })]), 'its lot is on hold'],
  ])('keeps %s whatever its age', (_what, f, why) => {
    expect(fileRetention(policy, now, f)).toEqual({ kind: 'protected', why, recheckSeconds: why.includes('not decided') ? 600 : stateRecheckSeconds });
  });

  it('keeps a file until its class minimum age, and says until when', () => {
    expect(fileRetention(policy, now, file([ref({ at: daysAgo(3) })]))).toEqual({ kind: 'young', until: new Date(daysAgo(3).getTime() + 7 * day * 1000), why: 'PASS images are kept at least 7 days' });
    expect(fileRetention(policy, now, file([ref({ class: 'fail', at: daysAgo(300) })]))).toMatchObject({ kind: 'young', why: 'FAIL images are kept at least 365 days' });
    expect(fileRetention(policy, now, file([ref({ class: 'disposed', at: daysAgo(364) })]))).toMatchObject({ kind: 'young', why: 'images of disposed parts are kept at least 365 days' });
    expect(fileRetention(policy, now, file([ref({ as: 'overlay', class: 'fail', at: daysAgo(29) })]))).toMatchObject({ kind: 'young', why: 'overlays are kept at least 30 days' });
  });

  it('a file exactly at its minimum age may go', () => {
    expect(fileRetention(policy, now, file([ref({ at: daysAgo(7) })]))).toEqual({ kind: 'removable', class: 'pass', maxAgeExpired: false });
  });

  it('a shared file waits for the longest minimum age among the inspections that use it', () => {
    const f = file([ref({ class: 'pass', at: daysAgo(100) }), ref({ class: 'fail', at: daysAgo(200) })]);
    expect(fileRetention(policy, now, f)).toEqual({ kind: 'young', until: new Date(daysAgo(200).getTime() + 365 * day * 1000), why: 'FAIL images are kept at least 365 days' });
    // Posted again as a PASS yesterday: it is young again.
    const again = file([ref({ class: 'pass', at: daysAgo(100) }), ref({ class: 'pass', at: daysAgo(1) })]);
    expect(fileRetention(policy, now, again)).toMatchObject({ kind: 'young', until: new Date(daysAgo(1).getTime() + 7 * day * 1000) });
  });

  it('a REVIEW part no longer awaiting a person is kept as a disposed one', () => {
    expect(fileRetention(policy, now, file([ref({ class: 'review', at: daysAgo(100) })]))).toEqual({
      kind: 'young', until: new Date(daysAgo(100).getTime() + 365 * day * 1000), why: 'REVIEW images are kept at least 365 days',
    });
  });

  it('past its maximum age only when every inspection using it is past its class maximum', () => {
    expect(fileRetention(policy, now, file([ref({ at: daysAgo(91) })]))).toEqual({ kind: 'removable', class: 'pass', maxAgeExpired: true });
    expect(fileRetention(policy, now, file([ref({ at: daysAgo(91) }), ref({ at: daysAgo(50) })]))).toEqual({ kind: 'removable', class: 'pass', maxAgeExpired: false });
    // FAIL has no maximum: an image shared with an old FAIL is never past it.
    expect(fileRetention(policy, now, file([ref({ at: daysAgo(400) }), ref({ class: 'fail', at: daysAgo(400) })]))).toEqual({ kind: 'removable', class: 'fail', maxAgeExpired: false });
  });

  it('a file counts in the most lasting class among its inspections', () => {
    expect(classOf([ref({ as: 'overlay' }), ref({ class: 'pass' })])).toBe('pass');
    expect(classOf([ref({ class: 'fail' }), ref({ class: 'pass' })])).toBe('fail');
    expect(classOf([ref({ class: 'fail' }), ref({ class: 'disposed' })])).toBe('disposed');
    expect(classOf([ref({ state: 'undecided', class: null })])).toBeNull();
    expect(classOf([ref({ as: 'overlay', class: 'fail' })])).toBe('overlay');
  });
});

describe('the pruning plan', () => {
  const watermarkText = '90 % of its 1.0 MiB quota';
  const plan = (o: { toFree: number; files?: StoredFileFacts[]; prepared?: PreparedCandidate[]; p?: RetentionPolicy }) =>
    planPruning({ policy: o.p ?? policy, now, bytesToFree: o.toFree, watermarkText, files: o.files ?? [], prepared: o.prepared ?? [] });

  it('frees from above the high watermark down to the low one, and nothing below the high one', () => {
    expect(bytesToFree(950, { highBytes: 900, lowBytes: 800 })).toBe(150);
    expect(bytesToFree(900, { highBytes: 900, lowBytes: 800 })).toBe(0);
    expect(bytesToFree(850, { highBytes: 900, lowBytes: 800 })).toBe(0);
  });

  it('woken by an upload (over the high watermark counting itself, or refused), frees down to the low watermark from anywhere above it', () => {
    expect(bytesToFree(850, { highBytes: 900, lowBytes: 800 }, true)).toBe(50);
    expect(bytesToFree(800, { highBytes: 900, lowBytes: 800 }, true)).toBe(0);
    expect(bytesToFree(950, { highBytes: 900, lowBytes: 800 }, true)).toBe(150);
  });

  it('removes the oldest files past their minimum age first, until enough is freed', () => {
    const files = [file([ref({ at: daysAgo(20) })]), file([ref({ at: daysAgo(40) })]), file([ref({ at: daysAgo(30) })]), file([ref({ at: daysAgo(10) })])];
    const p = plan({ toFree: 250, files });
    expect(p.removals.map((r) => r.sha256)).toEqual([files[1]!.sha256, files[2]!.sha256, files[0]!.sha256]);
    expect(p.removals.every((r) => r.policy === 'quota' && r.what === 'file' && r.class === 'pass')).toBe(true);
    expect(p.removals[0]!.reason).toBe('the image store was over its high watermark (90 % of its 1.0 MiB quota): PASS images older than 7 days are removed oldest first');
    expect(p.bytesToFree).toBe(0);
    expect(p.deferrals).toEqual([]);
  });

  it('orders by age across classes, each past its own minimum', () => {
    const oldFail = file([ref({ class: 'fail', at: daysAgo(500) })]);
    const oldOverlay = file([ref({ as: 'overlay', at: daysAgo(45) })]);
    const pass = file([ref({ at: daysAgo(8) })]);
    const youngFail = file([ref({ class: 'fail', at: daysAgo(100) })]);
    const p = plan({ toFree: 1000, files: [pass, youngFail, oldOverlay, oldFail] });
    expect(p.removals.map((r) => [r.sha256, r.class])).toEqual([[oldFail.sha256, 'fail'], [oldOverlay.sha256, 'overlay'], [pass.sha256, 'pass']]);
    expect(p.deferrals).toEqual([{ sha256: youngFail.sha256, until: new Date(daysAgo(100).getTime() + 365 * day * 1000), why: 'FAIL images are kept at least 365 days' }]);
    expect(p.bytesToFree).toBe(700);
  });

  it('never removes what is needed, however much must be freed', () => {
    const kept = [
      file([ref({ at: daysAgo(400) })], { pinned: true }),
      file([ref({ state: 'undecided', class: null, at: daysAgo(400) })]),
      file([ref({ state: 'awaiting_review', class: 'review', at: daysAgo(400) })]),
      file([ref({ lotHeld: true, at: daysAgo(400) })]),
      file([ref({ as: 'overlay', viewPinned: true, at: daysAgo(400) })]),
      file([ref({ class: 'fail', at: daysAgo(10) })]),
    ];
    const p = plan({ toFree: 10_000, files: kept });
    expect(p.removals).toEqual([]);
    expect(p.bytesToFree).toBe(10_000);
    expect(p.deferrals.map((d) => d.sha256).sort()).toEqual(kept.map((f) => f.sha256).sort());
    // States are looked at again within a day (an undecided inspection within 10 minutes), should the event that ends them be missed.
    expect(p.deferrals.filter((d) => d.until.getTime() === now.getTime() + stateRecheckSeconds * 1000)).toHaveLength(4);
    expect(p.deferrals.filter((d) => d.until.getTime() === now.getTime() + 600_000)).toHaveLength(1);
  });

  it('below the high watermark, only files past their maximum age go; the rest stay where they are', () => {
    const expired = file([ref({ at: daysAgo(100) })]);
    const old = file([ref({ at: daysAgo(50) })]);
    const p = plan({ toFree: 0, files: [old, expired] });
    expect(p.removals).toEqual([expect.objectContaining({ sha256: expired.sha256, policy: 'max_age', reason: 'PASS images are kept at most 90 days' })]);
    expect(p.deferrals).toEqual([]);
  });

  it('files past their maximum age go even after enough is freed', () => {
    const short = { ...policy, overlay: { minSeconds: 0, maxSeconds: 10 * day } };
    const a = file([ref({ at: daysAgo(50) })], { bytes: 500 });
    const b = file([ref({ at: daysAgo(30) })]);
    const expiredOverlay = file([ref({ as: 'overlay', at: daysAgo(20) })]);
    const p = plan({ toFree: 100, files: [a, b, expiredOverlay], p: short });
    expect(p.removals.map((r) => [r.sha256, r.policy])).toEqual([[a.sha256, 'quota'], [expiredOverlay.sha256, 'max_age']]);
    expect(p.removals[1]!.reason).toBe('overlays are kept at most 10 days');
  });

  it('prepared model inputs go first, and never while an inspection using them is undecided', () => {
    const prepared: PreparedCandidate[] = [
      { sha256: 'p1', bytes: 300, storedAt: daysAgo(0.01), undecided: false },
      { sha256: 'p2', bytes: 300, storedAt: daysAgo(0.02), undecided: true },
    ];
    const f = file([ref({ at: daysAgo(30) })]);
    const p = plan({ toFree: 350, files: [f], prepared });
    expect(p.removals.map((r) => [r.sha256, r.what, r.class])).toEqual([['p1', 'prepared', 'prepared'], [f.sha256, 'file', 'pass']]);
    expect(p.removals[0]!.reason).toBe('the image store was over its high watermark (90 % of its 1.0 MiB quota): prepared model inputs go first');
  });

  it('prepared inputs past their maximum age go whatever the watermark; younger ones only under pressure', () => {
    const prepared: PreparedCandidate[] = [
      { sha256: 'old', bytes: 10, storedAt: new Date(now.getTime() - 7200_000), undecided: false },
      { sha256: 'new', bytes: 10, storedAt: new Date(now.getTime() - 60_000), undecided: false },
    ];
    expect(plan({ toFree: 0, prepared }).removals).toEqual([expect.objectContaining({ sha256: 'old', policy: 'max_age', reason: 'model inputs prepared at upload are kept at most 1 hour' })]);
    expect(plan({ toFree: 1, prepared }).removals.map((r) => r.sha256)).toEqual(['old']);
    expect(plan({ toFree: 15, prepared }).removals.map((r) => r.sha256)).toEqual(['old', 'new']);
    const withMin = { ...policy, prepared: { minSeconds: 600, maxSeconds: null } };
    expect(plan({ toFree: 100, prepared, p: withMin }).removals.map((r) => r.sha256)).toEqual(['old']);
  });

  it('with a minimum age of 0, a decided PASS may go at once under pressure', () => {
    const p0 = { ...policy, pass: { minSeconds: 0, maxSeconds: null } };
    const f = file([ref({ at: now })]);
    expect(plan({ toFree: 1, files: [f], p: p0 }).removals).toEqual([expect.objectContaining({
      sha256: f.sha256, reason: 'the image store was over its high watermark (90 % of its 1.0 MiB quota): PASS images are removed oldest first',
    })]);
  });
});

describe('sizes, durations and limits', () => {
  it.each([
    ['7d', 7 * day], ['12h', 12 * 3600], ['30m', 1800], ['45s', 45], ['0', 0], [' 2D ', 2 * day],
  ])('reads the duration %s', (text, seconds) => {
    expect(parseDuration(text, false)).toBe(seconds);
  });

  it.each(['7', 'seven days', '-1d', '1.5d', '1w'])('refuses the duration %s', (text) => {
    expect(() => parseDuration(text, false)).toThrow(/not a duration/);
  });

  it('a maximum may be none', () => {
    expect(parseDuration('none', true)).toBeNull();
    expect(() => parseDuration('none', false)).toThrow(/not a duration/);
  });

  it.each([
    ['80%', { percent: 80 }], ['12.5 %', { percent: 12.5 }], ['500MB', { bytes: 500e6 }], ['2GiB', { bytes: 2 * 1024 ** 3 }],
    ['1000000', { bytes: 1_000_000 }], ['300 kB', { bytes: 300_000 }], ['1tb', { bytes: 1e12 }],
  ])('reads the size %s', (text, spec) => {
    expect(parseSize(text)).toEqual(spec);
  });

  it.each(['0', '0%', '101%', 'lots', '5 parsecs', '-1GB'])('refuses the size %s', (text) => {
    expect(() => parseSize(text)).toThrow();
  });

  it('puts the quota, its watermarks and the floor in bytes on the volume', () => {
    expect(storageLimits({ quota: { percent: 80 }, highWatermarkPercent: 90, lowWatermarkPercent: 80, minFree: { percent: 5 } }, 1000_000)).toEqual({
      quotaBytes: 800_000, highBytes: 720_000, lowBytes: 640_000, minFreeBytes: 50_000,
    });
    expect(storageLimits({ quota: { bytes: 2000 }, highWatermarkPercent: 50, lowWatermarkPercent: 25, minFree: { bytes: 10 } }, 1e12)).toEqual({
      quotaBytes: 2000, highBytes: 1000, lowBytes: 500, minFreeBytes: 10,
    });
  });

  it('writes durations and sizes for people', () => {
    expect([formatDuration(7 * day), formatDuration(3600), formatDuration(90 * 60), formatDuration(1), formatDuration(0), formatDuration(90)]).toEqual(['7 days', '1 hour', '90 minutes', '1 second', '0 seconds', '90 seconds']);
    expect([formatBytes(12), formatBytes(1536), formatBytes(2 * 1024 ** 3)]).toEqual(['12 B', '1.5 kiB', '2.0 GiB']);
  });
});
