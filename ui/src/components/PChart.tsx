// p-chart of the fraction defective per time bucket: points p, centre line p̄, and the control
// limits as step lines (they vary with each bucket's sample size n).

import { formatPercent, formatTime } from '../format';
import type { LotSummary } from '../types';

const W = 560;
const H = 240;
const M = { top: 14, right: 48, bottom: 40, left: 46 };

export function PChart(props: { chart: LotSummary['pChart'] }) {
  const { points, pBar, bucketSeconds } = props.chart;
  if (points.length === 0) return <p class="muted" data-testid="p-chart">No decided inspections yet.</p>;
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const top = Math.min(1, Math.max(0.05, ...points.map((p) => Math.max(p.p, p.ucl))) * 1.1);
  const band = iw / points.length;
  const xl = (i: number) => M.left + band * i;
  const xc = (i: number) => M.left + band * i + band / 2;
  const y = (v: number) => M.top + ih - (Math.max(0, Math.min(top, v)) / top) * ih;
  const step = (key: 'ucl' | 'lcl') =>
    points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${xl(i)} ${y(p[key])} L ${xl(i + 1)} ${y(p[key])}`).join(' ');
  const yTicks = [0, top / 2, top].map((t) => Number(t.toPrecision(2)));
  const labelEvery = Math.max(1, Math.ceil(points.length / 6));

  return (
    <svg class="chart p-chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`p-chart, buckets of ${bucketSeconds} s`} data-testid="p-chart">
      {yTicks.map((t) => (
        <g key={t} class="tick">
          <line class="gridline" x1={M.left} x2={W - M.right} y1={y(t)} y2={y(t)} />
          <text x={M.left - 4} y={y(t) + 3} text-anchor="end">
            {formatPercent(t, 0)}
          </text>
        </g>
      ))}
      <path class="limit-line ucl" d={step('ucl')} />
      <text class="limit-label" x={W - M.right + 4} y={y(points[points.length - 1]!.ucl) + 3}>
        UCL
      </text>
      <path class="limit-line lcl" d={step('lcl')} />
      {pBar !== null ? (
        <g class="centre">
          <line x1={M.left} x2={W - M.right} y1={y(pBar)} y2={y(pBar)} />
          <text x={W - M.right + 4} y={y(pBar) + 3}>
            p̄ {formatPercent(pBar)}
          </text>
        </g>
      ) : null}
      <polyline class="p-line" points={points.map((p, i) => `${xc(i)},${y(p.p)}`).join(' ')} />
      {points.map((p, i) => {
        const out = p.p > p.ucl || p.p < p.lcl;
        return (
          <circle key={p.start} class={out ? 'p-point out' : 'p-point'} cx={xc(i)} cy={y(p.p)} r={out ? 4.5 : 3.5} data-out={out ? 'true' : undefined}>
            <title>
              {formatTime(p.start)}: {p.defective}/{p.n} = {formatPercent(p.p)} (UCL {formatPercent(p.ucl)}, LCL {formatPercent(p.lcl)})
            </title>
          </circle>
        );
      })}
      {points.map((p, i) =>
        i % labelEvery === 0 ? (
          <text key={`l${p.start}`} class="axis-label" x={xc(i)} y={M.top + ih + 14} text-anchor="middle">
            {shortTime(p.start)}
          </text>
        ) : null,
      )}
      <line class="axis" x1={M.left} x2={W - M.right} y1={M.top + ih} y2={M.top + ih} />
      <g class="legend" transform={`translate(${M.left}, ${H - 8})`}>
        <circle class="p-point" cx={4} cy={-3} r={3} />
        <text x={11} y={0}>p</text>
        <line class="centre-key" x1={30} x2={46} y1={-3} y2={-3} />
        <text x={50} y={0}>p̄</text>
        <line class="limit-key" x1={70} x2={86} y1={-3} y2={-3} />
        <text x={90} y={0}>UCL / LCL</text>
      </g>
    </svg>
  );
}

function shortTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}
