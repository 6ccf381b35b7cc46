// The review queue's filters and its last-seen order, kept in sessionStorage so the inspection
// view can step to the next/previous flagged part (n / p) in the order the reviewer saw, and so a
// reload keeps the filters. When the order is unknown (an inspection opened by link), it is fetched.

import { get, qs } from './api';
import type { Inspection } from './types';

export interface QueueFilters {
  line: string;
  stationId: string;
  partNumber: string;
  lotId: string;
  /** Minutes, as typed (empty: no minimum age). */
  olderThanMinutes: string;
}

export const emptyFilters: QueueFilters = { line: '', stationId: '', partNumber: '', lotId: '', olderThanMinutes: '' };

const FILTERS_KEY = 'visq.queue.filters';
const ORDER_KEY = 'visq.queue.order';

export function loadFilters(): QueueFilters {
  try {
    const raw = sessionStorage.getItem(FILTERS_KEY);
    if (raw) return { ...emptyFilters, ...(JSON.parse(raw) as Partial<QueueFilters>) };
  } catch {
    /* a damaged entry: start clean */
  }
  return { ...emptyFilters };
}

export function saveFilters(f: QueueFilters): void {
  sessionStorage.setItem(FILTERS_KEY, JSON.stringify(f));
}

export function queuePath(f: QueueFilters, limit = 200): string {
  const minutes = Number(f.olderThanMinutes);
  const olderThanSeconds = f.olderThanMinutes.trim() !== '' && Number.isFinite(minutes) && minutes > 0 ? Math.round(minutes * 60) : null;
  return `/v1/review${qs({
    line: f.line.trim(),
    stationId: f.stationId.trim(),
    partNumber: f.partNumber.trim(),
    lotId: f.lotId.trim(),
    olderThanSeconds,
    limit,
  })}`;
}

export async function fetchQueue(f: QueueFilters, signal?: AbortSignal): Promise<Inspection[]> {
  const res = await get<{ inspections: Inspection[] }>(queuePath(f), { signal });
  saveOrder(res.inspections.map((i) => i.id));
  return res.inspections;
}

export function saveOrder(ids: string[]): void {
  sessionStorage.setItem(ORDER_KEY, JSON.stringify(ids));
}

export function loadOrder(): string[] | null {
  try {
    const raw = sessionStorage.getItem(ORDER_KEY);
    const ids = raw ? (JSON.parse(raw) as unknown) : null;
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : null;
  } catch {
    return null;
  }
}

/**
 * The queue neighbour of `id` (+1 next, -1 previous). When `id` is no longer in the queue (just
 * disposed), the next item is the one that followed it in the order last seen, still awaiting review.
 */
export async function neighbour(id: string, step: 1 | -1, refresh: boolean): Promise<string | null> {
  const before = loadOrder();
  let order = before;
  if (refresh || !order || !order.includes(id)) {
    try {
      order = (await fetchQueue(loadFilters())).map((i) => i.id);
    } catch {
      order = before ?? [];
    }
  }
  const at = order.indexOf(id);
  if (at >= 0) return order[at + step] ?? null;
  // Not in the fresh queue: find where it stood in the previous order and take the nearest survivor.
  const prevAt = before ? before.indexOf(id) : -1;
  if (prevAt >= 0 && before) {
    const live = new Set(order);
    for (let i = prevAt + step; i >= 0 && i < before.length; i += step) {
      const cand = before[i];
      if (cand !== undefined && live.has(cand)) return cand;
    }
  }
  return step === 1 ? (order[0] ?? null) : null;
}
