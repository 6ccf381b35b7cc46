// Quality plans: the current version of each, and (for engineers) a way to start a new one.

import { useState } from 'preact/hooks';
import { ErrorText, Loading, useGet } from '../components/common';
import { formatTime } from '../format';
import { href, navigate } from '../router';
import { canEditPlans, useSession } from '../session';
import type { PlanSummary } from '../types';

export function PlansView() {
  const session = useSession();
  const plans = useGet<{ plans: PlanSummary[] }>('/v1/quality-plans');
  const [pn, setPn] = useState('');
  const [op, setOp] = useState('');
  return (
    <div>
      <div class="view-head">
        <h1>Quality plans</h1>
        {canEditPlans(session?.role) ? (
          <form
            class="inline-form"
            onSubmit={(e) => {
              e.preventDefault();
              if (pn.trim()) navigate(href.plan(pn.trim(), op.trim() || null));
            }}
          >
            <label for="new-plan-pn">Part number</label>
            <input id="new-plan-pn" value={pn} onInput={(e) => setPn(e.currentTarget.value)} />
            <label for="new-plan-op">Operation</label>
            <input id="new-plan-op" value={op} placeholder="(any)" onInput={(e) => setOp(e.currentTarget.value)} />
            <button type="submit">Open or create</button>
          </form>
        ) : null}
      </div>
      <ErrorText error={plans.error} />
      {plans.loading ? <Loading what="plans" /> : null}
      {plans.data && plans.data.plans.length === 0 ? <p class="empty">No quality plans yet.</p> : null}
      {plans.data && plans.data.plans.length > 0 ? (
        <table class="grid" data-testid="plans-table">
          <thead>
            <tr>
              <th>Part number</th>
              <th>Operation</th>
              <th class="num">Version</th>
              <th>Created</th>
              <th>By</th>
            </tr>
          </thead>
          <tbody>
            {plans.data.plans.map((p) => (
              <tr key={`${p.partNumber}|${p.operation ?? ''}`} data-testid="plan-row" data-id={p.partNumber}>
                <td>
                  <a href={href.plan(p.partNumber, p.operation)}>{p.partNumber}</a>
                </td>
                <td>{p.operation ?? <span class="muted">any</span>}</td>
                <td class="num">{p.version}</td>
                <td>{formatTime(p.createdAt)}</td>
                <td>{p.createdBy}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
