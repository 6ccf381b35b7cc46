/**
 * Image retention, as pure code: which stored files may be removed, why the others are kept, and
 * in which order the pruner removes them (src/images/pruner.ts runs it against the database and
 * the store). No I/O here: the facts about each file come in, the plan goes out.
 *
 * What traceability needs is never removed: an image or overlay of an inspection that is undecided,
 * awaiting review or in a lot on hold, nor one a person pinned (nor the overlays of a pinned
 * image's view). A file shared by several inspections (the same bytes posted twice) is removed only
 * when every one of them allows it.
 */

/** The retention classes a stored file counts in, from the least to the most lasting. */
export const retentionClasses = ['overlay', 'pass', 'fail', 'review', 'disposed'] as const;
export type RetentionClass = (typeof retentionClasses)[number];
/** What `visq storage status` and /metrics report on: the classes, files only undecided inspections refer to, and prepared model inputs. */
export type StorageClass = RetentionClass | 'undecided' | 'prepared';
export const storageClasses: readonly StorageClass[] = [...retentionClasses, 'undecided', 'prepared'];

/** How long a class is kept: never removed before `minSeconds`; removed at `maxSeconds` even with room to spare (null: no maximum). */
export interface Ages { minSeconds: number; maxSeconds: number | null }

/**
 * Ages per class. REVIEW has none of its own: a REVIEW part awaits a person until it is disposed
 * (and is never removed meanwhile), then it counts as disposed.
 */
export interface RetentionPolicy {
  pass: Ages;
  fail: Ages;
  disposed: Ages;
  overlay: Ages;
  prepared: Ages;
}

/** One inspection referring to a stored file, as the pruner needs to know it. */
export interface FileReference {
  /** The file is this inspection's part image, or one of its overlays. */
  as: 'image' | 'overlay';
  state: 'undecided' | 'awaiting_review' | 'decided';
  /** The inspection's class: its verdict, or `disposed` once a person disposed of it; null while undecided. */
  class: 'pass' | 'fail' | 'review' | 'disposed' | null;
  /** When the inspection was received (for its image) or decided (for an overlay): the reference's age runs from here. */
  at: Date;
  lotHeld: boolean;
  /** For an overlay: the image of its view is pinned. */
  viewPinned: boolean;
}

export interface StoredFileFacts {
  sha256: string;
  bytes: number;
  /** When the file was last stored or referred to again: the pruner removes the oldest first. */
  storedAt: Date;
  pinned: boolean;
  refs: FileReference[];
}

export type FileRetention =
  /** Kept whatever its age, while a state lasts (undecided, awaiting review, lot held, pinned); looked at again after `recheckSeconds`. */
  | { kind: 'protected'; why: string; recheckSeconds: number }
  /** Kept until `until`, when its youngest reference reaches its class's minimum age. */
  | { kind: 'young'; until: Date; why: string }
  | { kind: 'removable'; class: RetentionClass; maxAgeExpired: boolean };

const rank = (c: RetentionClass) => retentionClasses.indexOf(c);
const refClass = (r: FileReference): RetentionClass => (r.as === 'overlay' ? 'overlay' : r.class ?? 'pass');
/** REVIEW counts as disposed (see RetentionPolicy). */
export const agesOf = (policy: RetentionPolicy, c: RetentionClass): Ages => policy[c === 'review' ? 'disposed' : c];

/** The most lasting class among a file's references (what its bytes are reported under). */
export function classOf(refs: readonly FileReference[]): RetentionClass | null {
  let best: RetentionClass | null = null;
  for (const r of refs) {
    if (r.as === 'image' && r.class === null) continue;
    const c = refClass(r);
    if (best === null || rank(c) > rank(best)) best = c;
  }
  return best;
}

/** Whether a file may be removed now, and if not, why and until when. */
export function fileRetention(policy: RetentionPolicy, now: Date, f: StoredFileFacts): FileRetention {
  // The events that end these states make the pruner look again at once; the recheck is a safety net
  // (an undecided inspection is decided within seconds, so its net is close).
  const held = (why: string): FileRetention => ({ kind: 'protected', why, recheckSeconds: stateRecheckSeconds });
  if (f.pinned) return held('pinned by a person');
  for (const r of f.refs) {
    if (r.state === 'undecided') return { kind: 'protected', why: 'an inspection using it is not decided yet', recheckSeconds: 600 };
    if (r.state === 'awaiting_review') return held('an inspection using it awaits review');
    if (r.lotHeld) return held('its lot is on hold');
    if (r.viewPinned) return held('the image of its view is pinned');
  }
  let until = 0;
  let youngClass: RetentionClass | null = null;
  let expired = f.refs.length > 0;
  for (const r of f.refs) {
    const c = refClass(r);
    const ages = agesOf(policy, c);
    const eligibleAt = r.at.getTime() + ages.minSeconds * 1000;
    if (eligibleAt > now.getTime() && eligibleAt > until) {
      until = eligibleAt;
      youngClass = c;
    }
    if (ages.maxSeconds === null || r.at.getTime() + ages.maxSeconds * 1000 > now.getTime()) expired = false;
  }
  if (youngClass !== null) {
    return { kind: 'young', until: new Date(until), why: `${classLabel[youngClass]} are kept at least ${formatDuration(agesOf(policy, youngClass).minSeconds)}` };
  }
  // Nothing refers to it (it cannot happen through visq): nothing needs it.
  return { kind: 'removable', class: classOf(f.refs) ?? 'pass', maxAgeExpired: expired || f.refs.length === 0 };
}

/**
 * How much a pruning run must free: from above the high watermark down to the low one, else
 * nothing. When woken (an upload found the store over its high watermark, counting itself, or was
 * refused; a hold or pin was released), from anywhere above the low one: the upload that saw it may
 * not be recorded yet, and one larger than the room between the high watermark and the quota must
 * not wait forever.
 */
export function bytesToFree(storedBytes: number, limits: { highBytes: number; lowBytes: number }, woken = false): number {
  return storedBytes > limits.highBytes || (woken && storedBytes > limits.lowBytes) ? storedBytes - limits.lowBytes : 0;
}

export interface PreparedCandidate { sha256: string; bytes: number; storedAt: Date; undecided: boolean }

export interface Removal {
  sha256: string;
  /** `prepared`: the model-input pixels kept beside an image; `file`: the image or overlay itself. */
  what: 'prepared' | 'file';
  class: StorageClass;
  bytes: number;
  policy: 'quota' | 'max_age';
  /** What the inspection document, the workbench and a 410 say. */
  reason: string;
}

export interface Deferral { sha256: string; until: Date; why: string }

export interface PrunePlan {
  /** In the order they are to be done: prepared inputs first, then files oldest first. */
  removals: Removal[];
  /** Files the pruner need not look at again before `until`. */
  deferrals: Deferral[];
  /** What is still to be freed after these removals. */
  bytesToFree: number;
}

export interface PruneInput {
  policy: RetentionPolicy;
  now: Date;
  /** From bytesToFree(): 0 when the store is under its high watermark (then only maximum ages remove anything). */
  bytesToFree: number;
  /** How the quota reads in a reason: `90 % of its 2.0 GiB quota`. */
  watermarkText: string;
  prepared: readonly PreparedCandidate[];
  files: readonly StoredFileFacts[];
}

/** A state (hold, pin, review) is looked at again after this long, should the event that ends it be missed. */
export const stateRecheckSeconds = 24 * 3600;

/**
 * The safe order (issue 13): prepared model inputs first — derived data, only a speed-up for the
 * workers — then the stored files past their class's minimum age, oldest first. Files past their
 * class's maximum age go whatever the watermark; the rest only while the store must shrink.
 */
export function planPruning(input: PruneInput): PrunePlan {
  const { policy, now } = input;
  let toFree = input.bytesToFree;
  const removals: Removal[] = [];
  const deferrals: Deferral[] = [];
  const oldestFirst = <T extends { storedAt: Date; sha256: string }>(xs: readonly T[]) =>
    [...xs].sort((a, b) => a.storedAt.getTime() - b.storedAt.getTime() || a.sha256.localeCompare(b.sha256));

  const prepared = policy.prepared;
  for (const p of oldestFirst(input.prepared)) {
    const age = (now.getTime() - p.storedAt.getTime()) / 1000;
    if (p.undecided || age < prepared.minSeconds) continue;
    const expired = prepared.maxSeconds !== null && age >= prepared.maxSeconds;
    if (!expired && toFree <= 0) continue;
    removals.push({
      sha256: p.sha256, what: 'prepared', class: 'prepared', bytes: p.bytes, policy: expired ? 'max_age' : 'quota',
      reason: expired ? `model inputs prepared at upload are kept at most ${formatDuration(prepared.maxSeconds!)}` : `the image store was over its high watermark (${input.watermarkText}): prepared model inputs go first`,
    });
    toFree -= p.bytes;
  }

  for (const f of oldestFirst(input.files)) {
    const r = fileRetention(policy, now, f);
    if (r.kind === 'protected') deferrals.push({ sha256: f.sha256, until: new Date(now.getTime() + r.recheckSeconds * 1000), why: r.why });
    else if (r.kind === 'young') deferrals.push({ sha256: f.sha256, until: r.until, why: r.why });
    else if (r.maxAgeExpired || toFree > 0) {
      const ages = agesOf(policy, r.class);
      removals.push({
        sha256: f.sha256, what: 'file', class: r.class, bytes: f.bytes, policy: r.maxAgeExpired ? 'max_age' : 'quota',
        reason: r.maxAgeExpired
          ? `${classLabel[r.class]} are kept at most ${formatDuration(ages.maxSeconds ?? 0)}`
          : `the image store was over its high watermark (${input.watermarkText}): ${classLabel[r.class]}${ages.minSeconds ? ` older than ${formatDuration(ages.minSeconds)}` : ''} are removed oldest first`,
      });
      toFree -= f.bytes;
    }
  }
  return { removals, deferrals, bytesToFree: Math.max(0, toFree) };
}

export const classLabel: Record<RetentionClass, string> = {
  overlay: 'overlays',
  pass: 'PASS images',
  fail: 'FAIL images',
  review: 'REVIEW images',
  disposed: 'images of disposed parts',
};

/** `7 days`, `12 hours`, `90 minutes`, `45 seconds`. */
export function formatDuration(seconds: number): string {
  const units: [number, string][] = [[86400, 'day'], [3600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [size, name] of units) {
    if (seconds >= size && seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

/** Reads `7d`, `12h`, `30m`, `45s`, `0` (and `none` where a maximum may be absent) as seconds; null for `none`. */
export function parseDuration(text: string, allowNone: boolean): number | null {
  const t = text.trim().toLowerCase();
  if (allowNone && (t === 'none' || t === '')) return null;
  const m = /^(\d+)\s*(d|h|m|s)?$/.exec(t);
  if (!m || (!m[2] && Number(m[1]) !== 0)) throw new Error(`"${text}" is not a duration: write a whole number with d, h, m or s (7d, 12h, 30m, 45s)${allowNone ? ', or none' : ''}`);
  const factor = { d: 86400, h: 3600, m: 60, s: 1 }[(m[2] ?? 's') as 'd' | 'h' | 'm' | 's'];
  return Number(m[1]) * factor;
}

/** A quota or a floor: an absolute size (`500MB`, `2GiB`, `1000000`) or a share of the volume (`80%`). */
export type SizeSpec = { bytes: number } | { percent: number };

export function parseSize(text: string): SizeSpec {
  const t = text.trim();
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(t);
  if (pct) {
    const percent = Number(pct[1]);
    if (percent <= 0 || percent > 100) throw new Error(`"${text}": a share of the volume is more than 0 % and at most 100 %`);
    return { percent };
  }
  const m = /^(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/i.exec(t);
  if (!m) throw new Error(`"${text}" is not a size: write bytes with a unit (500MB, 2GiB, 1TB) or a share of the volume (80%)`);
  const units: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3, tb: 1e12, tib: 1024 ** 4 };
  const bytes = Math.floor(Number(m[1]) * units[(m[2] ?? 'b').toLowerCase()]!);
  if (bytes <= 0) throw new Error(`"${text}": a size must be more than 0 bytes`);
  return { bytes };
}

/** A size spec in bytes on a volume of `volumeBytes`. */
export const resolveSize = (spec: SizeSpec, volumeBytes: number): number =>
  'bytes' in spec ? spec.bytes : Math.floor((volumeBytes * spec.percent) / 100);

/** The storage settings (config `storage`): a quota, its watermarks in percent of it, and the volume's free-space floor. */
export interface StorageSettings { quota: SizeSpec; highWatermarkPercent: number; lowWatermarkPercent: number; minFree: SizeSpec }

export interface StorageLimits { quotaBytes: number; highBytes: number; lowBytes: number; minFreeBytes: number }

/** The settings in bytes, on a volume of `volumeBytes`. */
export function storageLimits(s: StorageSettings, volumeBytes: number): StorageLimits {
  const quotaBytes = resolveSize(s.quota, volumeBytes);
  return {
    quotaBytes,
    highBytes: Math.floor((quotaBytes * s.highWatermarkPercent) / 100),
    lowBytes: Math.floor((quotaBytes * s.lowWatermarkPercent) / 100),
    minFreeBytes: resolveSize(s.minFree, volumeBytes),
  };
}

/** `90 % of its 2.0 GiB quota`, for reasons people read. */
export const watermarkText = (s: StorageSettings, limits: StorageLimits) => `${s.highWatermarkPercent} % of its ${formatBytes(limits.quotaBytes)} quota`;

/** `1.5 GiB`, `300 kiB`, `12 B`. */
export function formatBytes(n: number): string {
  const units = ['B', 'kiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
