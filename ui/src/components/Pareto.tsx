// Pareto chart of failing characteristics: bars by count (descending) and the cumulative share line.

import { formatPercent } from '../format';

const W = 560;
const H = 240;
const M = { top: 14, right: 44, bottom: 58, left: 40 };

export function Pareto(props: { data: { characteristic: string; count: number }[] }) {
  const data = [...props.data].filter((d) => d.count > 0).sort((a, b) => b.count - a.count);
  if (data.length === 0) return <p class="muted" data-testid="pareto">No failing characteristics.</p>;
  const total = data.reduce((s, d) => s + d.count, 0);
  const maxCount = Math.max(...data.map((d) => d.count));
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const band = iw / data.length;
  // Few categories would give very wide bars: cap them so the chart still reads as a Pareto.
  const barW = Math.max(4, Math.min(72, band * 0.7));
  const y = (c: number) => M.top + ih - (c / maxCount) * ih;
  const yPct = (p: number) => M.top + ih - p * ih;
  let cum = 0;
  const line = data.map((d, i) => {
    cum += d.count;
    return { x: M.left + band * i + band / 2, p: cum / total };
  });
  const ticks = niceTicks(maxCount);

  return (
    <svg class="chart pareto" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Pareto chart of failing characteristics" data-testid="pareto">
      {ticks.map((t) => (
        <g key={t} class="tick">
          <line x1={M.left} x2={W - M.right} y1={y(t)} y2={y(t)} class="gridline" />
          <text x={M.left - 4} y={y(t) + 3} text-anchor="end">
            {t}
          </text>
        </g>
      ))}
      {[0, 0.5, 0.8, 1].map((p) => (
        <text key={p} class="tick" x={W - M.right + 4} y={yPct(p) + 3}>
          {Math.round(p * 100)}%
        </text>
      ))}
      <line class="ref80" x1={M.left} x2={W - M.right} y1={yPct(0.8)} y2={yPct(0.8)} />
      {data.map((d, i) => {
        const x = M.left + band * i + (band - barW) / 2;
        return (
          <g key={d.characteristic} class="bar" data-characteristic={d.characteristic} data-count={d.count}>
            <title>
              {d.characteristic}: {d.count} ({formatPercent(d.count / total)})
            </title>
            <rect x={x} y={y(d.count)} width={barW} height={M.top + ih - y(d.count)} />
            <text class="bar-label" x={x + barW / 2} y={y(d.count) - 3} text-anchor="middle">
              {d.count}
            </text>
            <text
              class="axis-label"
              x={M.left + band * i + band / 2}
              y={M.top + ih + 12}
              text-anchor="end"
              transform={`rotate(-30 ${M.left + band * i + band / 2} ${M.top + ih + 12})`}
            >
              {d.characteristic.length > 16 ? `${d.characteristic.slice(0, 15)}…` : d.characteristic}
            </text>
          </g>
        );
      })}
      <polyline class="cumulative" points={line.map((pt) => `${pt.x},${yPct(pt.p)}`).join(' ')} />
      {line.map((pt, i) => (
        <circle key={i} class="cumulative-dot" cx={pt.x} cy={yPct(pt.p)} r={3}>
          <title>cumulative {formatPercent(pt.p)}</title>
        </circle>
      ))}
      <line class="axis" x1={M.left} x2={W - M.right} y1={M.top + ih} y2={M.top + ih} />
    </svg>
  );
}

/** A few round tick values from 0 to at least `max`. */
export function niceTicks(max: number, count = 4): number[] {
  if (max <= 0) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const stepInt = max < count ? 1 : Math.max(1, Math.round(step));
  const ticks: number[] = [];
  for (let t = 0; t <= max + 1e-9; t += stepInt) ticks.push(t);
  return ticks;
}
