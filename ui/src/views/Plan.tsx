// One part number's quality plan: the current (or a chosen) version, the editor for engineers,
// the version history and the difference between any two versions.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, enc, qs } from '../api';
import { ErrorText, Loading, Panel, useGet } from '../components/common';
import { formatNumber, formatTime } from '../format';
import { href, navigate } from '../router';
import { canEditPlans, useSession } from '../session';
import type { ModelInfo, PlanDiff, PlanVersion, PlanVersionInfo } from '../types';
import { PlanEditor } from './PlanEditor';

export function PlanView(props: { partNumber: string; operation: string | null; version: number | null }) {
  const session = useSession();
  const canEdit = canEditPlans(session?.role);
  const base = `/v1/quality-plans/${enc(props.partNumber)}`;
  const [saved, setSaved] = useState<string | null>(null);
  const plan = useGet<PlanVersion>(`${base}${qs({ version: props.version, operation: props.operation })}`);
  const versions = useGet<{ versions: PlanVersionInfo[] }>(`${base}/versions${qs({ operation: props.operation })}`);
  const models = useGet<{ models: ModelInfo[] }>(canEdit ? '/v1/models' : null);

  const notFound = plan.error instanceof ApiError && plan.error.status === 404;
  const current = plan.data;
  const latest = versions.data?.versions[0]?.version ?? null;
  const viewingOld = current !== null && latest !== null && current.version !== latest;

  return (
    <div class="plan">
      <div class="view-head">
        <a href={href.plans()}>← Plans</a>
        <h1>
          Plan {props.partNumber}
          {props.operation ? ` / ${props.operation}` : ''}
        </h1>
        {current ? (
          <span class="muted" data-testid="plan-version">
            version {current.version} · {formatTime(current.createdAt)} · {current.createdBy}
          </span>
        ) : null}
        {viewingOld ? (
          <a href={href.plan(props.partNumber, props.operation)} class="tag">
            not the current version — show current (v{latest})
          </a>
        ) : null}
      </div>
      {saved ? (
        <p class="notice" role="status" data-testid="plan-saved">
          {saved}
        </p>
      ) : null}
      {notFound ? <p class="note">No plan for this part number{props.operation ? ' and operation' : ''} yet.{canEdit ? ' Create the first version below.' : ''}</p> : <ErrorText error={plan.error} />}
      {plan.loading && !current ? <Loading what="plan" /> : null}
      <div class="plan-body">
        <div class="plan-main">
          {canEdit && (current || notFound) ? (
            <PlanEditor
              key={`${current?.version ?? 'new'}`}
              partNumber={props.partNumber}
              operation={current?.plan.operation ?? props.operation}
              initial={current?.plan ?? null}
              basedOn={current?.version ?? null}
              models={models.data?.models ?? null}
              modelsError={models.error}
              onSaved={(v) => {
                setSaved(`Saved version ${v}.`);
                versions.reload();
                if (props.version) navigate(href.plan(props.partNumber, props.operation));
                else plan.reload();
              }}
            />
          ) : current ? (
            <PlanTable plan={current} />
          ) : null}
        </div>
        <div class="plan-side">
          <Versions
            partNumber={props.partNumber}
            operation={props.operation}
            versions={versions.data?.versions ?? null}
            // A part number without a plan has no versions yet: that is not an error to show.
            error={versions.error instanceof ApiError && versions.error.status === 404 ? null : versions.error}
            shown={current?.version ?? null}
          />
        </div>
      </div>
    </div>
  );
}

function PlanTable(props: { plan: PlanVersion }) {
  const p = props.plan.plan;
  return (
    <Panel title={`Characteristics (v${props.plan.version})`} testId="plan-view">
      <p>
        FAIL verdicts {p.confirmFail ? <strong>wait for a person's confirmation</strong> : 'are final without confirmation'}.
      </p>
      <table class="grid">
        <thead>
          <tr>
            <th>Name</th>
            <th>Model</th>
            <th>Measure</th>
            <th class="num">LSL</th>
            <th class="num">USL</th>
            <th class="num">Guard band</th>
            <th>Severity</th>
          </tr>
        </thead>
        <tbody>
          {p.characteristics.map((c) => (
            <tr key={c.name}>
              <td>{c.name}</td>
              <td>{c.model}</td>
              <td>{c.measure}</td>
              <td class="num">{formatNumber(c.lsl ?? null)}</td>
              <td class="num">{formatNumber(c.usl ?? null)}</td>
              <td class="num">{formatNumber(c.guardBand)}</td>
              <td>
                <span class={`sev sev-${c.severity}`}>{c.severity}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

function Versions(props: {
  partNumber: string;
  operation: string | null;
  versions: PlanVersionInfo[] | null;
  error: unknown;
  shown: number | null;
}) {
  const list = props.versions ?? [];
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);

  // By default compare the two newest versions, so the last change is visible at once.
  useEffect(() => {
    if (list.length >= 2) {
      setTo(list[0]!.version);
      setFrom(list[1]!.version);
    } else {
      setTo(null);
      setFrom(null);
    }
  }, [props.versions]);

  const diffPath =
    from !== null && to !== null && from !== to
      ? `/v1/quality-plans/${enc(props.partNumber)}/diff${qs({ from, to, operation: props.operation })}`
      : null;
  const diff = useGet<PlanDiff>(diffPath);

  const select = (id: string, label: string, value: number | null, set: (v: number) => void) => (
    <span class="field-inline">
      <label for={id}>{label}</label>
      <select id={id} value={value ?? ''} onChange={(e) => set(Number(e.currentTarget.value))}>
        {list.map((v) => (
          <option key={v.version} value={v.version}>
            v{v.version}
          </option>
        ))}
      </select>
    </span>
  );

  return (
    <>
      <Panel title="Versions" testId="plan-versions">
        <ErrorText error={props.error} />
        {list.length === 0 && !props.error ? <p class="muted">No versions.</p> : null}
        {list.length ? (
          <table class="grid compact">
            <thead>
              <tr>
                <th class="num">Version</th>
                <th>Created</th>
                <th>By</th>
                <th>Reason</th>
              </tr>
            </thead>
            <tbody>
              {list.map((v) => (
                <tr key={v.version} class={v.version === props.shown ? 'selected' : undefined} data-testid="plan-version-row" data-version={v.version}>
                  <td class="num">
                    <a href={href.plan(props.partNumber, props.operation, v.version)}>v{v.version}</a>
                  </td>
                  <td>{formatTime(v.createdAt)}</td>
                  <td>{v.createdBy}</td>
                  <td>{v.reason ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Panel>
      {list.length >= 2 ? (
        <Panel title="Compare versions">
          <div class="compare">
            {select('diff-from', 'From', from, setFrom)}
            {select('diff-to', 'To', to, setTo)}
          </div>
          {from === to ? <p class="muted">Choose two different versions.</p> : null}
          <ErrorText error={diff.error} />
          {diff.loading ? <Loading /> : null}
          {diff.data ? <DiffTable diff={diff.data} /> : null}
        </Panel>
      ) : null}
    </>
  );
}

function DiffTable(props: { diff: PlanDiff }) {
  const { diff } = props;
  const show = (v: unknown) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
  return (
    <div data-testid="plan-diff">
      <p class="muted">
        v{diff.from} → v{diff.to}: {diff.changes.length} change{diff.changes.length === 1 ? '' : 's'}
      </p>
      {diff.changes.length ? (
        <table class="grid compact diff">
          <thead>
            <tr>
              <th>Field</th>
              <th>Change</th>
              <th>From</th>
              <th>To</th>
            </tr>
          </thead>
          <tbody>
            {diff.changes.map((c) => (
              <tr key={`${c.kind}:${c.path}`} class={`diff-${c.kind}`}>
                <td class="mono">{c.path}</td>
                <td>{c.kind}</td>
                <td class="mono">{show(c.from)}</td>
                <td class="mono">{show(c.to)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No differences.</p>
      )}
    </div>
  );
}
