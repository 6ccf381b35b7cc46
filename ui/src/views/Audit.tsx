// The audit trail, newest first, one page at a time (each entry is hash-chained to the previous).

import { useEffect, useState } from 'preact/hooks';
import { errorMessage, get, qs } from '../api';
import { ErrorText, Loading } from '../components/common';
import { formatTime, shortHash } from '../format';
import type { AuditEntry } from '../types';

const PAGE = 100;

export function AuditView() {
  // Each page is fetched "before" the oldest seq of the previous one; the stack lets us go back.
  const [stack, setStack] = useState<(number | null)[]>([null]);
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const before = stack[stack.length - 1] ?? null;

  useEffect(() => {
    const ctl = new AbortController();
    setBusy(true);
    get<{ entries: AuditEntry[] }>(`/v1/audit${qs({ limit: PAGE, before })}`, { signal: ctl.signal })
      .then((r) => {
        setEntries(r.entries);
        setError(null);
      })
      .catch((err: unknown) => {
        if ((err as Error).name !== 'AbortError') setError(errorMessage(err));
      })
      .finally(() => setBusy(false));
    return () => ctl.abort();
  }, [before]);

  const oldest = entries && entries.length ? entries[entries.length - 1]!.seq : null;
  const hasOlder = entries !== null && entries.length === PAGE && oldest !== null && oldest > 1;

  return (
    <div>
      <div class="view-head">
        <h1>Audit trail</h1>
        <span class="spacer" />
        <button type="button" disabled={stack.length <= 1 || busy} onClick={() => setStack((s) => s.slice(0, -1))}>
          ‹ Newer
        </button>
        <button type="button" disabled={!hasOlder || busy} onClick={() => setStack((s) => [...s, oldest])}>
          Older ›
        </button>
      </div>
      <ErrorText error={error} />
      {busy && !entries ? <Loading what="audit trail" /> : null}
      {entries && entries.length === 0 ? <p class="empty">No entries.</p> : null}
      {entries && entries.length ? (
        <table class="grid audit" data-testid="audit-table">
          <thead>
            <tr>
              <th class="num">Seq</th>
              <th>Time</th>
              <th>Actor</th>
              <th>Action</th>
              <th>Entity</th>
              <th>Reason</th>
              <th>Details</th>
              <th>Hash</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.seq} data-testid="audit-row" data-seq={e.seq}>
                <td class="num">{e.seq}</td>
                <td>{formatTime(e.at)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td class="mono">{e.entity}</td>
                <td>{e.reason ?? <span class="muted">—</span>}</td>
                <td>
                  <Details value={e.details} />
                </td>
                <td class="mono" title={`hash ${e.hash}\nprevious ${e.prevHash ?? '—'}`}>
                  {shortHash(e.hash)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

function Details(props: { value: unknown }) {
  if (props.value === null || props.value === undefined) return <span class="muted">—</span>;
  const text = typeof props.value === 'string' ? props.value : JSON.stringify(props.value, null, 1);
  if (text.length <= 60) return <span class="mono small">{text.replace(/\s*\n\s*/g, ' ')}</span>;
  return (
    <details>
      <summary class="mono small">{text.replace(/\s*\n\s*/g, ' ').slice(0, 50)}…</summary>
      <pre>{text}</pre>
    </details>
  );
}
