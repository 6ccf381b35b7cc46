// One inspection: the image with overlays, the verdict and why, each characteristic against its
// limits, traceability, the part's history, and — while it awaits a person — the signed disposition.

import { Fragment, type ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { del, enc, post, put, qs } from '../api';
import { ErrorText, isTyping, Loading, useGet, VerdictBadge } from '../components/common';
import { dash, formatNumber, formatTime, shortHash } from '../format';
import { loadOrder, neighbour } from '../queue-store';
import { href, navigate } from '../router';
import { useSession } from '../session';
import type { Decision, ImageRef, Inspection } from '../types';
import { CharacteristicBar } from './CharacteristicBar';
import { ImageViewer, removalText } from './ImageViewer';
import { DECISION_LABEL, SignatureDialog } from './SignatureDialog';

const ADVANCE_AFTER_MS = 1500;

export function InspectionView(props: { id: string }) {
  const session = useSession();
  const loaded = useGet<Inspection>(`/v1/inspections/${enc(props.id)}`);
  const doc = loaded.data;
  const [dialog, setDialog] = useState<Decision | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [navError, setNavError] = useState<string | null>(null);
  const advanceTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  // A part still in the pipeline: look again shortly.
  useEffect(() => {
    if (!doc || doc.status === 'done') return;
    const t = setTimeout(loaded.reload, 2000);
    return () => clearTimeout(t);
  }, [doc]);

  useEffect(() => () => clearTimeout(advanceTimer.current), []);

  // The server says whether the part waits for a person (REVIEW, or FAIL under a plan asking for confirmation).
  const canDispose = doc?.awaitingReview ?? false;

  async function step(dir: 1 | -1) {
    setNavError(null);
    const to = await neighbour(props.id, dir, false);
    if (to) navigate(href.inspection(to));
    else setNavError(dir === 1 ? 'This is the last part in the queue.' : 'This is the first part in the queue.');
  }

  // Shortcuts: a / r / s open the signature dialog, n / p step through the queue. Registered once
  // and reading refs, so a key pressed right after a render still sees the current state.
  const keyState = useRef({ dialog, canDispose, step });
  keyState.current = { dialog, canDispose, step };
  useLayoutEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const st = keyState.current;
      // A held key repeats: it must not skip through several parts.
      if (st.dialog || e.repeat || isTyping(e) || e.ctrlKey || e.metaKey || e.altKey) return;
      const k = e.key.toLowerCase();
      if (st.canDispose && (k === 'a' || k === 'r' || k === 's')) {
        e.preventDefault();
        const d: Decision = k === 'a' ? 'accept' : k === 'r' ? 'rework' : 'scrap';
        st.dialog = d;
        setDialog(d);
      } else if (k === 'n') {
        e.preventDefault();
        void st.step(1);
      } else if (k === 'p') {
        e.preventDefault();
        void st.step(-1);
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  async function dispose(decision: Decision, reason: string, password: string) {
    const updated = await post<Inspection>(`/v1/inspections/${enc(props.id)}/disposition`, { decision, reason, password });
    loaded.setData(updated);
    setDialog(null);
    setNotice(`Final verdict: ${updated.verdict ?? '—'}. Opening the next part in the queue…`);
    // Let the reviewer see the final verdict, then move on to the next flagged part.
    advanceTimer.current = setTimeout(async () => {
      const next = await neighbour(props.id, 1, true);
      navigate(next ? href.inspection(next) : href.queue());
    }, ADVANCE_AFTER_MS);
  }

  if (loaded.loading && !doc) return <Loading what="inspection" />;
  if (!doc) {
    return (
      <div>
        <ErrorText error={loaded.error} />
        <a href={href.queue()}>Back to the queue</a>
      </div>
    );
  }

  const order = loadOrder();
  const position = order ? order.indexOf(doc.id) : -1;

  return (
    <div class="inspection">
      <div class="view-head">
        <a href={href.queue()}>← Queue</a>
        <h1>
          {dash(doc.partNumber)} · <span class="mono">{dash(doc.serial)}</span>
        </h1>
        <span class="muted mono" title="Inspection id">
          {doc.id}
        </span>
        {position >= 0 && order ? (
          <span class="muted">
            {position + 1} of {order.length} in queue
          </span>
        ) : null}
        <span class="spacer" />
        <button type="button" onClick={() => void step(-1)} title="Previous in queue (p)">
          ‹ Previous
        </button>
        <button type="button" onClick={() => void step(1)} title="Next in queue (n)">
          Next ›
        </button>
      </div>
      <ErrorText error={navError} />
      <div class="inspection-body">
        <div class="inspection-main">
          {doc.status !== 'done' ? (
            <p class="note">This inspection is {doc.status}; the verdict will appear when the models have run.</p>
          ) : null}
          <ImageViewer images={doc.images ?? []} overlays={doc.overlays ?? []} />
          <p class="hint" data-testid="shortcut-hint">
            Keys: {canDispose ? 'a accept · r rework · s scrap · ' : ''}n / p next / previous in queue · + / − / 0 zoom · wheel zooms, drag pans
          </p>
        </div>
        <aside class="inspection-side">
          <VerdictPanel doc={doc} />
          {notice ? (
            <p class="notice" role="status" data-testid="disposition-result">
              {notice}
            </p>
          ) : null}
          {canDispose ? (
            <div class="decide" role="group" aria-label="Disposition">
              {(['accept', 'rework', 'scrap'] as const).map((d) => (
                <button key={d} type="button" class={`decision decision-${d}`} onClick={() => setDialog(d)} title={`${DECISION_LABEL[d]} (${d[0]})`}>
                  {DECISION_LABEL[d]}
                </button>
              ))}
            </div>
          ) : null}
          {doc.disposition ? <DispositionRecord doc={doc} /> : null}
          <Characteristics doc={doc} />
          <Provenance doc={doc} />
          <Traceability doc={doc} onChange={loaded.reload} />
          <History doc={doc} />
        </aside>
      </div>
      {dialog ? (
        <SignatureDialog
          decision={dialog}
          signerName={session?.name ?? ''}
          onCancel={() => setDialog(null)}
          onSubmit={async (reason, password) => {
            try {
              await dispose(dialog, reason, password);
            } catch (err) {
              // Someone else decided meanwhile: show the current state behind the dialog.
              if ((err as { status?: number }).status === 409) loaded.reload();
              throw err;
            }
          }}
        />
      ) : null}
    </div>
  );
}

function VerdictPanel(props: { doc: Inspection }) {
  const { doc } = props;
  return (
    <section class="side-section verdict-panel">
      <div class="verdict-line">
        <VerdictBadge verdict={doc.verdict} testId="verdict" large />
        <span class={doc.final ? 'tag tag-final' : 'tag'} data-testid="final">
          {doc.final ? 'final' : 'not final'}
        </span>
        <span class="muted">
          model: <VerdictBadge verdict={doc.modelVerdict} testId="model-verdict" />
        </span>
      </div>
      {doc.reason ? (
        <p class="reason" data-testid="verdict-reason">
          {doc.reason}
        </p>
      ) : null}
    </section>
  );
}

function DispositionRecord(props: { doc: Inspection }) {
  const d = props.doc.disposition;
  if (!d) return null;
  return (
    <section class="side-section disposition" data-testid="disposition">
      <h2>Disposition</h2>
      <dl class="kv">
        <dt>Decision</dt>
        <dd class={`decision-text decision-${d.decision}`}>{DECISION_LABEL[d.decision] ?? d.decision}</dd>
        <dt>Meaning</dt>
        <dd>{d.meaning}</dd>
        <dt>Reason</dt>
        <dd>{d.reason}</dd>
        <dt>Signed by</dt>
        <dd>
          {d.name} <span class="muted">({d.by})</span>
        </dd>
        <dt>At</dt>
        <dd>{formatTime(d.at)}</dd>
      </dl>
    </section>
  );
}

function Characteristics(props: { doc: Inspection }) {
  const chars = props.doc.characteristics ?? [];
  return (
    <section class="side-section">
      <h2>Characteristics</h2>
      {chars.length === 0 ? <p class="muted">None measured.</p> : null}
      <ul class="chars">
        {chars.map((c) => (
          <li key={c.name} class={`char char-${c.result}`} data-testid={`characteristic-${c.name}`}>
            <div class="char-head">
              <span class="char-name">{c.name}</span>
              <span class={`sev sev-${c.severity}`}>{c.severity}</span>
              <span class="char-value mono">{formatNumber(c.value)}</span>
              <span class={`result result-${c.result}`}>{c.result}</span>
            </div>
            <CharacteristicBar c={c} />
            <div class="char-meta muted">
              {c.model} · {c.measure}
              {c.view !== null && c.view !== undefined ? ` · view ${c.view + 1}` : ''}
              {c.guardBand ? ` · guard band ${formatNumber(c.guardBand)}` : ''}
            </div>
            {c.problem ? <div class="char-problem">{c.problem}</div> : null}
          </li>
        ))}
      </ul>
    </section>
  );
}

function Provenance(props: { doc: Inspection }) {
  const { doc } = props;
  return (
    <section class="side-section">
      <h2>Models and plan</h2>
      <dl class="kv">
        {(doc.models ?? []).map((m) => (
          <Fragment key={m.id}>
            <dt>Model</dt>
            <dd>
              {m.id} <span class="muted">v{m.version}</span>{' '}
              <span class="mono muted" title={m.sha256}>
                {shortHash(m.sha256)}
              </span>
            </dd>
          </Fragment>
        ))}
        <dt>Plan</dt>
        <dd>
          {doc.plan ? (
            <a href={href.plan(doc.plan.partNumber, doc.plan.operation, doc.plan.version)} data-testid="plan-link">
              {doc.plan.partNumber}
              {doc.plan.operation ? ` / ${doc.plan.operation}` : ''} v{doc.plan.version}
            </a>
          ) : (
            '—'
          )}
        </dd>
      </dl>
    </section>
  );
}

function Traceability(props: { doc: Inspection; onChange: () => void }) {
  const { doc } = props;
  const rows: [string, ComponentChildren][] = [
    ['Site', dash(doc.site)],
    ['Line', dash(doc.line)],
    ['Station', dash(doc.stationId)],
    ['Part number', dash(doc.partNumber)],
    ['Serial', <span class="mono">{dash(doc.serial)}</span>],
    ['Lot', doc.lotId ? <a href={href.lot(doc.lotId)} data-testid="lot-link">{doc.lotId}</a> : '—'],
    ['Work order', dash(doc.workOrder)],
    ['Operation', dash(doc.operation)],
    ['Operator', dash(doc.operator)],
    ['Captured', formatTime(doc.capturedAt)],
    ['Received', formatTime(doc.receivedAt)],
    ['Decided', formatTime(doc.decidedAt)],
  ];
  return (
    <section class="side-section">
      <h2>Traceability</h2>
      <dl class="kv">
        {rows.map(([k, v]) => (
          <Fragment key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </Fragment>
        ))}
        {(doc.images ?? []).map((img, i) => (
          <Fragment key={`img${i}`}>
            <dt>Image {doc.images.length > 1 ? i + 1 : ''}</dt>
            <dd class="mono hash" title={img.sha256}>
              {img.sha256}
              <span class="muted">
                {' '}
                {img.width}×{img.height} {img.mediaType}
              </span>
            </dd>
            <dt>Retention</dt>
            <dd>
              <KeepImage image={img} onChange={props.onChange} />
            </dd>
          </Fragment>
        ))}
      </dl>
    </section>
  );
}

function History(props: { doc: Inspection }) {
  const { doc } = props;
  const path = doc.partNumber && doc.serial ? `/v1/inspections${qs({ partNumber: doc.partNumber, serial: doc.serial })}` : null;
  const history = useGet<{ inspections: Inspection[] }>(path);
  const others = (history.data?.inspections ?? []).filter((i) => i.id !== doc.id);
  return (
    <section class="side-section" data-testid="history">
      <h2>History of this part</h2>
      <ErrorText error={history.error} />
      {history.loading ? <Loading /> : others.length === 0 ? <p class="muted">No other inspections of this serial.</p> : null}
      {others.length ? (
        <table class="grid compact">
          <tbody>
            {others.map((i) => (
              <tr key={i.id}>
                <td>
                  <a href={href.inspection(i.id)}>{formatTime(i.receivedAt)}</a>
                </td>
                <td>{dash(i.operation)}</td>
                <td>
                  <VerdictBadge verdict={i.verdict} />
                </td>
                <td class="muted">{i.final ? 'final' : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {doc.lotId ? (
        <p>
          <a href={href.lot(doc.lotId)}>Lot {doc.lotId} →</a>
        </p>
      ) : null}
    </section>
  );
}

/**
 * "Keep this image": pins the image (and its view's overlays) against the retention policy, with a
 * reason; shows who pinned it, or when and why the policy removed it.
 */
function KeepImage(props: { image: ImageRef; onChange: () => void }) {
  const { image } = props;
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const path = `/v1/images/${enc(image.sha256)}/pin`;
  const act = async (request: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await request();
      setOpen(false);
      setReason('');
      props.onChange();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (image.removed) {
    return (
      <div class="muted" data-testid="image-removal">
        {removalText(image.removed)}
      </div>
    );
  }
  if (image.pinned) {
    return (
      <div class="keep-image" data-testid="image-pinned">
        <span>
          Kept: pinned by {image.pinned.by} on {formatTime(image.pinned.at)} — {image.pinned.reason}
        </span>
        <button type="button" class="link-button" disabled={busy} onClick={() => void act(() => del(path))}>
          Unpin
        </button>
        <ErrorText error={error} />
      </div>
    );
  }
  if (!open) {
    return (
      <div class="keep-image">
        <button type="button" data-testid="keep-image" title="Pin this image so that the retention policy never removes it" onClick={() => setOpen(true)}>
          Keep this image
        </button>
      </div>
    );
  }
  return (
    <form
      class="keep-image"
      onSubmit={(e) => {
        e.preventDefault();
        void act(() => put(path, { reason }));
      }}
    >
      <label>
        Why keep it? <input value={reason} required maxLength={2000} onInput={(e) => setReason(e.currentTarget.value)} />
      </label>
      <button type="submit" class="primary" disabled={busy || reason.trim() === ''}>
        Pin
      </button>
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ErrorText error={error} />
    </form>
  );
}
