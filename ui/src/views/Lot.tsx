// One lot: counts and yield, Pareto of failing characteristics, p-chart, the inspections (paged)
// and the CSV/PDF reports.

import { useEffect, useState } from 'preact/hooks';
import { enc, errorMessage, get, qs } from '../api';
import { ErrorText, Loading, Panel, useGet, VerdictBadge } from '../components/common';
import { Pareto } from '../components/Pareto';
import { PChart } from '../components/PChart';
import { formatPercent, formatTime } from '../format';
import { href } from '../router';
import type { LotPage, LotSummary } from '../types';

export function LotView(props: { lotId: string }) {
  const base = `/v1/lots/${enc(props.lotId)}`;
  const summary = useGet<LotSummary>(`${base}/summary`);
  const s = summary.data;
  const [hold, setHold] = useState<LotPage['hold']>(null);

  return (
    <div class="lot">
      <div class="view-head">
        <a href={href.lots()}>← Lots</a>
        <h1>Lot {props.lotId}</h1>
        {s ? <span class="muted">{s.partNumbers.join(', ')}</span> : null}
        {hold ? (
          <span class="tag tag-hold" data-testid="lot-hold" title="No image of this lot is removed while it is on hold">
            On hold since {formatTime(hold.at)} ({hold.by}): {hold.reason}
          </span>
        ) : null}
        <span class="spacer" />
        <a class="button" href={`${base}/report.csv`} download>
          Download CSV
        </a>
        <a class="button" href={`${base}/report.pdf`} download>
          Download PDF
        </a>
      </div>
      <ErrorText error={summary.error} />
      {summary.loading && !s ? <Loading what="lot summary" /> : null}
      {s ? (
        <>
          <div class="stats">
            <Stat label="Yield" testId="lot-yield" value={formatPercent(s.yield)} hint={`of ${s.decided} decided`} />
            <Stat label="PASS" value={String(s.counts.PASS)} cls="pass" testId="lot-count-pass" />
            <Stat label="FAIL" value={String(s.counts.FAIL)} cls="fail" testId="lot-count-fail" />
            <Stat label="REVIEW" value={String(s.counts.REVIEW)} cls="review" testId="lot-count-review" />
            <Stat label="Pending" value={String(s.counts.pending)} testId="lot-count-pending" />
          </div>
          <div class="charts">
            <Panel title="Failing characteristics (Pareto)">
              <Pareto data={s.pareto} />
            </Panel>
            <Panel title={`p-chart (${describeBucket(s.pChart.bucketSeconds)} buckets)`}>
              <PChart chart={s.pChart} />
            </Panel>
          </div>
        </>
      ) : null}
      <LotInspections base={base} onHold={setHold} />
    </div>
  );
}

function Stat(props: { label: string; value: string; hint?: string; cls?: string; testId?: string }) {
  return (
    <div class={`stat ${props.cls ? `stat-${props.cls}` : ''}`}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value" data-testid={props.testId}>
        {props.value}
      </div>
      {props.hint ? <div class="stat-hint muted">{props.hint}</div> : null}
    </div>
  );
}

function describeBucket(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function LotInspections(props: { base: string; onHold: (hold: LotPage['hold']) => void }) {
  const [rows, setRows] = useState<LotPage['inspections']>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function more(from: string | null, replace: boolean) {
    setBusy(true);
    try {
      const page = await get<LotPage>(`${props.base}${qs({ limit: 100, cursor: from })}`);
      setRows((r) => (replace ? page.inspections : [...r, ...page.inspections]));
      props.onHold(page.hold);
      setCursor(page.nextCursor);
      setDone(!page.nextCursor);
      setError(null);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  }

  useEffect(() => {
    void more(null, true);
  }, [props.base]);

  return (
    <Panel title={`Inspections (${rows.length}${done ? '' : '+'})`} testId="lot-inspections">
      <ErrorText error={error} />
      {rows.length ? (
        <table class="grid compact">
          <thead>
            <tr>
              <th>Serial</th>
              <th>Verdict</th>
              <th>Final</th>
              <th>Inspection</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-testid="lot-inspection-row" data-id={r.id}>
                <td class="mono">
                  <a href={href.inspection(r.id)}>{r.serial ?? '—'}</a>
                </td>
                <td>
                  <VerdictBadge verdict={r.verdict} />
                </td>
                <td>{r.final ? 'final' : r.verdict === 'REVIEW' ? <span class="muted">awaiting review</span> : ''}</td>
                <td class="mono muted">{r.id}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : busy ? (
        <Loading />
      ) : (
        <p class="muted">No inspections.</p>
      )}
      {!done && cursor ? (
        <button type="button" onClick={() => void more(cursor, false)} disabled={busy}>
          {busy ? 'Loading…' : 'Load more'}
        </button>
      ) : null}
    </Panel>
  );
}
