// Review queue: flagged parts awaiting a person, oldest first, filtered, live over SSE,
// and navigable from the keyboard (j/k or arrows to move, Enter to open).

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorMessage } from '../api';
import { ErrorText, isTyping, VerdictBadge } from '../components/common';
import { useReviewEvents } from '../events';
import { formatAge, formatNumber, formatTime } from '../format';
import { fetchQueue, loadFilters, saveFilters, type QueueFilters } from '../queue-store';
import { href, navigate } from '../router';
import type { CharacteristicResult, Inspection } from '../types';

const RESULT_RANK = { fail: 3, review: 2, pass: 1 } as const;
const SEVERITY_RANK = { critical: 3, major: 2, minor: 1 } as const;

/** The characteristic that most explains why the part is flagged: worst result, then severity. */
export function worstCharacteristic(chars: CharacteristicResult[]): CharacteristicResult | null {
  let worst: CharacteristicResult | null = null;
  for (const c of chars) {
    if (!worst) {
      worst = c;
      continue;
    }
    const a = RESULT_RANK[c.result] * 10 + SEVERITY_RANK[c.severity];
    const b = RESULT_RANK[worst.result] * 10 + SEVERITY_RANK[worst.severity];
    if (a > b) worst = c;
  }
  return worst;
}

export function QueueView() {
  const [filters, setFilters] = useState<QueueFilters>(loadFilters);
  const [items, setItems] = useState<Inspection[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState(0);
  const [now, setNow] = useState(Date.now());
  const request = useRef(0);
  const filtersRef = useRef(filters);
  filtersRef.current = filters;
  const itemsRef = useRef(items);
  itemsRef.current = items;
  const selectedRef = useRef(selected);
  selectedRef.current = selected;

  const load = useCallback(async () => {
    const ticket = ++request.current;
    try {
      const list = await fetchQueue(filtersRef.current);
      if (ticket !== request.current) return;
      // Keep the selection on the same inspection when the list changes under it.
      const selectedId = itemsRef.current?.[selectedRef.current]?.id;
      const at = selectedId ? list.findIndex((i) => i.id === selectedId) : -1;
      selectedRef.current = at >= 0 ? at : Math.min(selectedRef.current, Math.max(0, list.length - 1));
      itemsRef.current = list;
      setSelected(selectedRef.current);
      setItems(list);
      setError(null);
      setNow(Date.now());
    } catch (err) {
      if (ticket === request.current) setError(errorMessage(err));
    }
  }, []);

  // Filters change as the user types: wait for a pause before asking the server.
  useEffect(() => {
    saveFilters(filters);
    const t = setTimeout(() => void load(), items === null ? 0 : 300);
    return () => clearTimeout(t);
  }, [filters, load]);

  const live = useReviewEvents(() => void load());

  // Ages tick on even when nothing arrives.
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(t);
  }, []);

  // Keyboard navigation of the list. The handler reads refs, not state, so keys pressed faster
  // than a re-render (e.g. j then Enter) still act on the latest selection.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const list = itemsRef.current;
      if (e.altKey || e.ctrlKey || e.metaKey || !list?.length) return;
      // Letters belong to the field being typed in; arrows and Enter still drive the list from a
      // text filter (where they have no other use), but not from the number field (they step it).
      const inTextFilter = (e.target as HTMLElement).matches?.('.filters input:not([type=number])');
      if (isTyping(e) && !(inTextFilter && (e.key === 'ArrowDown' || e.key === 'ArrowUp' || e.key === 'Enter'))) return;
      const move = (to: number) => {
        selectedRef.current = Math.max(0, Math.min(list.length - 1, to));
        setSelected(selectedRef.current);
        e.preventDefault();
      };
      if (e.key === 'j' || e.key === 'ArrowDown') move(selectedRef.current + 1);
      else if (e.key === 'k' || e.key === 'ArrowUp') move(selectedRef.current - 1);
      else if (e.key === 'Enter') {
        // Enter on a link or button keeps its own meaning; from the page or a text filter it opens the selection.
        if ((e.target as HTMLElement).closest?.('a, button')) return;
        const item = list[selectedRef.current];
        if (item) {
          e.preventDefault();
          navigate(href.inspection(item.id));
        }
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  const tableRef = useRef<HTMLTableSectionElement>(null);
  useEffect(() => {
    const row = tableRef.current?.children[selected] as HTMLElement | undefined;
    row?.scrollIntoView?.({ block: 'nearest' });
  }, [selected]);

  const field = (key: keyof QueueFilters, label: string, props: Record<string, unknown> = {}) => (
    <div class="field">
      <label for={`qf-${key}`}>{label}</label>
      <input
        id={`qf-${key}`}
        value={filters[key]}
        onInput={(e) => setFilters({ ...filters, [key]: e.currentTarget.value })}
        {...props}
      />
    </div>
  );

  return (
    <div class="queue">
      <div class="view-head">
        <h1>Review queue</h1>
        <span class="count" data-testid="queue-count">
          {items ? `${items.length} awaiting review` : '…'}
        </span>
        <span class={`live live-${live}`} data-testid="live-status" title="Live updates from the server">
          {live === 'live' ? 'live' : live === 'reconnecting' ? 'reconnecting' : 'connecting'}
        </span>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        {field('line', 'Line')}
        {field('stationId', 'Station')}
        {field('partNumber', 'Part number')}
        {field('lotId', 'Lot')}
        {field('olderThanMinutes', 'Older than (min)', { type: 'number', min: 0, step: 'any', inputMode: 'numeric' })}
        <button type="button" onClick={() => setFilters({ line: '', stationId: '', partNumber: '', lotId: '', olderThanMinutes: '' })}>
          Clear
        </button>
      </form>
      <ErrorText error={error} />
      {items && items.length === 0 ? <p class="empty">Nothing awaits review.</p> : null}
      {items && items.length > 0 ? (
        <table class="grid queue-table">
          <thead>
            <tr>
              <th>Received</th>
              <th>Age</th>
              <th>Station</th>
              <th>Part number</th>
              <th>Serial</th>
              <th>Lot</th>
              <th>Model verdict</th>
              <th>Worst characteristic</th>
            </tr>
          </thead>
          <tbody ref={tableRef}>
            {items.map((it, i) => {
              const worst = worstCharacteristic(it.characteristics);
              return (
                <tr
                  key={it.id}
                  data-testid="queue-row"
                  data-id={it.id}
                  class={i === selected ? 'selected' : undefined}
                  aria-selected={i === selected}
                  onClick={(e) => {
                    selectedRef.current = i;
                    setSelected(i);
                    if ((e.target as HTMLElement).closest('a')) return;
                    navigate(href.inspection(it.id));
                  }}
                >
                  <td>
                    <a href={href.inspection(it.id)}>{formatTime(it.receivedAt)}</a>
                  </td>
                  <td class="num">{formatAge(it.receivedAt, now)}</td>
                  <td>{it.stationId ?? '—'}</td>
                  <td>{it.partNumber ?? '—'}</td>
                  <td class="mono">{it.serial ?? '—'}</td>
                  <td>{it.lotId ?? '—'}</td>
                  <td>
                    <VerdictBadge verdict={it.modelVerdict ?? it.verdict} />
                  </td>
                  <td>
                    {worst ? (
                      <span class={`result result-${worst.result}`}>
                        {worst.name} {worst.value !== null ? `= ${formatNumber(worst.value)}` : ''} ({worst.result})
                      </span>
                    ) : (
                      '—'
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      <p class="hint">Keys: j / k or ↓ / ↑ move · Enter opens</p>
    </div>
  );
}
