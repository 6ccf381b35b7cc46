// Editor for a new plan version: a table of characteristics, checked here first with the server's
// own rules (shown next to each field) and saved with a reason.

import { useState } from 'preact/hooks';
import { ApiError, enc, errorMessage, put } from '../api';
import { ErrorText, Panel } from '../components/common';
import { validateQualityPlan } from '../../../src/quality/quality-plan.js';
import type { ModelInfo, PlanCharacteristic, QualityPlan, Severity } from '../types';

const SEVERITIES: Severity[] = ['critical', 'major', 'minor'];

interface Row {
  /** Stable identity for rendering while rows are added/removed. */
  key: number;
  name: string;
  model: string;
  measure: string;
  lsl: string;
  usl: string;
  guardBand: string;
  severity: Severity;
}

type Field = 'name' | 'model' | 'measure' | 'lsl' | 'usl' | 'guardBand' | 'severity';
type RowErrors = Partial<Record<Field | 'row', string>>;

let nextKey = 1;

const numText = (v: number | null | undefined) => (v === null || v === undefined ? '' : String(v));

function toRow(c: PlanCharacteristic): Row {
  return {
    key: nextKey++,
    name: c.name,
    model: c.model,
    measure: c.measure,
    lsl: numText(c.lsl),
    usl: numText(c.usl),
    guardBand: numText(c.guardBand ?? 0),
    severity: c.severity ?? 'major',
  };
}

const emptyRow = (): Row => ({ key: nextKey++, name: '', model: '', measure: '', lsl: '', usl: '', guardBand: '0', severity: 'major' });

/** Parses a number field: undefined when empty, NaN when not a number (which the plan rules refuse). */
function parseNum(s: string): number | undefined {
  const t = s.trim();
  if (t === '') return undefined;
  return Number(t);
}

const fields = new Set<string>(['name', 'model', 'measure', 'lsl', 'usl', 'guardBand', 'severity']);
const sentence = (m: string) => m.charAt(0).toUpperCase() + m.slice(1);

/**
 * The server's own plan rules (src/quality/quality-plan.ts), so the editor never disagrees with
 * it: each problem shown at its row and field. Without the model list, model and measure names are
 * left to the server.
 */
export function validateRows(header: { partNumber: string; operation: string | null; confirmFail: boolean }, rows: Row[], models: ModelInfo[] | null): { errors: Map<number, RowErrors>; general: string[] } {
  const plan = toPlan(header.partNumber, header.operation, header.confirmFail, rows);
  const catalog = new Map(models ? models.map((m) => [m.id, m.measures]) : plan.characteristics.map((c) => [c.model, [c.measure]]));
  const checked = validateQualityPlan(plan, catalog);
  const errors = new Map<number, RowErrors>();
  const general: string[] = [];
  if (checked.ok) return { errors, general };
  for (const { path, message } of checked.issues) {
    const row = path[0] === 'characteristics' && typeof path[1] === 'number' ? rows[path[1]] : undefined;
    if (!row) {
      general.push(sentence(message));
      continue;
    }
    const field = typeof path[2] === 'string' && fields.has(path[2]) ? (path[2] as Field) : 'row';
    const e = errors.get(row.key) ?? {};
    e[field] ??= sentence(message);
    errors.set(row.key, e);
  }
  return { errors, general };
}

function toPlan(partNumber: string, operation: string | null, confirmFail: boolean, rows: Row[]): QualityPlan {
  return {
    partNumber,
    ...(operation ? { operation } : {}),
    confirmFail,
    characteristics: rows.map((r) => {
      const lsl = parseNum(r.lsl);
      const usl = parseNum(r.usl);
      const c: PlanCharacteristic = {
        name: r.name.trim(),
        model: r.model,
        measure: r.measure,
        guardBand: parseNum(r.guardBand) ?? 0,
        severity: r.severity,
      };
      if (lsl !== undefined) c.lsl = lsl;
      if (usl !== undefined) c.usl = usl;
      return c;
    }),
  };
}

export function PlanEditor(props: {
  partNumber: string;
  operation: string | null;
  initial: QualityPlan | null;
  basedOn: number | null;
  models: ModelInfo[] | null;
  modelsError: unknown;
  onSaved: (version: number) => void;
}) {
  const [rows, setRows] = useState<Row[]>(() => (props.initial?.characteristics.length ? props.initial.characteristics.map(toRow) : [emptyRow()]));
  const [confirmFail, setConfirmFail] = useState(props.initial?.confirmFail ?? false);
  const [reason, setReason] = useState('');
  const [reasonError, setReasonError] = useState<string | null>(null);
  const [showErrors, setShowErrors] = useState(false);
  const [serverError, setServerError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const { errors, general } = validateRows({ partNumber: props.partNumber, operation: props.operation, confirmFail }, rows, props.models);
  const update = (key: number, patch: Partial<Row>) => setRows((rs) => rs.map((r) => (r.key === key ? { ...r, ...patch } : r)));

  async function save(e: Event) {
    e.preventDefault();
    setShowErrors(true);
    setServerError(null);
    const noReason = !reason.trim();
    setReasonError(noReason ? 'A reason for the change is required.' : null);
    if (errors.size || general.length || noReason) return;
    setBusy(true);
    try {
      const res = await put<{ version: number }>(
        `/v1/quality-plans/${enc(props.partNumber)}?reason=${enc(reason.trim())}`,
        toPlan(props.partNumber, props.operation, confirmFail, rows),
      );
      setReason('');
      setShowErrors(false);
      props.onSaved(res.version);
    } catch (err) {
      setServerError(err instanceof ApiError && err.code === 'invalid_plan' ? `The server rejected the plan: ${err.message}` : errorMessage(err));
    } finally {
      setBusy(false);
    }
  }

  const err = (key: number, f: Field | 'row') => (showErrors ? errors.get(key)?.[f] : undefined);
  const errId = (key: number, f: string) => `pe-${key}-${f}-err`;
  const fieldError = (key: number, f: Field) => {
    const m = err(key, f);
    return m ? (
      <div class="field-error" id={errId(key, f)} data-testid={`error-${f}`}>
        {m}
      </div>
    ) : null;
  };
  const a11y = (key: number, f: Field) => (err(key, f) ? { 'aria-invalid': true, 'aria-describedby': errId(key, f) } : {});

  const modelOptions = (current: string) => {
    const list = props.models ?? [];
    const known = list.some((m) => m.id === current);
    return (
      <>
        <option value="">—</option>
        {!known && current ? <option value={current}>{current} (not in registry)</option> : null}
        {list.map((m) => (
          <option key={m.id} value={m.id}>
            {m.id} (v{m.version})
          </option>
        ))}
      </>
    );
  };
  const measureOptions = (model: string, current: string) => {
    const measures = props.models?.find((m) => m.id === model)?.measures ?? [];
    return (
      <>
        <option value="">—</option>
        {current && !measures.includes(current) ? <option value={current}>{current}</option> : null}
        {measures.map((m) => (
          <option key={m} value={m}>
            {m}
          </option>
        ))}
      </>
    );
  };

  return (
    <Panel title={props.basedOn ? `Edit (new version from v${props.basedOn})` : 'New plan'} testId="plan-editor">
      <form onSubmit={save} noValidate>
        <ErrorText error={props.modelsError ? `The model registry could not be read: ${errorMessage(props.modelsError)}` : null} />
        <label class="checkbox">
          <input type="checkbox" checked={confirmFail} onChange={(e) => setConfirmFail(e.currentTarget.checked)} />
          FAIL verdicts wait for a person's confirmation (confirmFail)
        </label>
        <table class="grid editor">
          <thead>
            <tr>
              <th>Name</th>
              <th>Model</th>
              <th>Measure</th>
              <th>LSL</th>
              <th>USL</th>
              <th>Guard band</th>
              <th>Severity</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={r.key} data-testid="plan-row-edit" class={err(r.key, 'row') ? 'row-invalid' : undefined}>
                <td>
                  <input aria-label="Name"
                    name="name" value={r.name} onInput={(e) => update(r.key, { name: e.currentTarget.value })} {...a11y(r.key, 'name')} />
                  {fieldError(r.key, 'name')}
                  {err(r.key, 'row') ? (
                    <div class="field-error" data-testid="error-row">
                      {err(r.key, 'row')}
                    </div>
                  ) : null}
                </td>
                <td>
                  <select
                    aria-label="Model"
                    name="model"
                    value={r.model}
                    onChange={(e) => {
                      const model = e.currentTarget.value;
                      const measures = props.models?.find((m) => m.id === model)?.measures ?? [];
                      // Keep the measure if the new model yields it too; else take its only one.
                      const measure = measures.includes(r.measure) ? r.measure : measures.length === 1 ? measures[0]! : '';
                      update(r.key, { model, measure });
                    }}
                    {...a11y(r.key, 'model')}
                  >
                    {modelOptions(r.model)}
                  </select>
                  {fieldError(r.key, 'model')}
                </td>
                <td>
                  <select aria-label="Measure"
                    name="measure" value={r.measure} onChange={(e) => update(r.key, { measure: e.currentTarget.value })} {...a11y(r.key, 'measure')}>
                    {measureOptions(r.model, r.measure)}
                  </select>
                  {fieldError(r.key, 'measure')}
                </td>
                <td>
                  <input aria-label="LSL"
                    name="lsl" class="num" inputMode="decimal" value={r.lsl} onInput={(e) => update(r.key, { lsl: e.currentTarget.value })} {...a11y(r.key, 'lsl')} />
                  {fieldError(r.key, 'lsl')}
                </td>
                <td>
                  <input aria-label="USL"
                    name="usl" class="num" inputMode="decimal" value={r.usl} onInput={(e) => update(r.key, { usl: e.currentTarget.value })} {...a11y(r.key, 'usl')} />
                  {fieldError(r.key, 'usl')}
                </td>
                <td>
                  <input
                    aria-label="Guard band"
                    name="guardBand"
                    class="num"
                    inputMode="decimal"
                    value={r.guardBand}
                    onInput={(e) => update(r.key, { guardBand: e.currentTarget.value })}
                    {...a11y(r.key, 'guardBand')}
                  />
                  {fieldError(r.key, 'guardBand')}
                </td>
                <td>
                  <select aria-label="Severity"
                    name="severity" value={r.severity} onChange={(e) => update(r.key, { severity: e.currentTarget.value as Severity })}>
                    {SEVERITIES.map((s) => (
                      <option key={s} value={s}>
                        {s}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  <button
                    type="button"
                    class="link-button"
                    aria-label={`Remove characteristic ${r.name || i + 1}`}
                    title="Remove this characteristic"
                    onClick={() => setRows((rs) => rs.filter((x) => x.key !== r.key))}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <button type="button" onClick={() => setRows((rs) => [...rs, emptyRow()])}>
          Add characteristic
        </button>
        {showErrors && general.length ? <ErrorText error={general.join(' ')} /> : null}
        <div class="save-row">
          <div class="field grow">
            <label for="plan-reason">Reason</label>
            <input
              id="plan-reason"
              placeholder="Reason for change"
              value={reason}
              required
              aria-invalid={reasonError ? true : undefined}
              aria-describedby={reasonError ? 'plan-reason-err' : undefined}
              onInput={(e) => setReason(e.currentTarget.value)}
            />
            {reasonError ? (
              <div class="field-error" id="plan-reason-err" data-testid="error-reason">
                {reasonError}
              </div>
            ) : null}
          </div>
          <button type="submit" class="primary" disabled={busy}>
            Save new version
          </button>
        </div>
        {showErrors && (errors.size > 0 || general.length > 0) ? (
          <p class="error" role="alert" data-testid="plan-invalid">
            Fix the marked fields before saving.
          </p>
        ) : null}
        {serverError ? (
          <p class="error server-error" role="alert" data-testid="plan-error">
            {serverError}
          </p>
        ) : null}
      </form>
    </Panel>
  );
}
