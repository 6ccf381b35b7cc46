// One characteristic's value against its spec limits, as a horizontal bar:
// out-of-spec zones red, guard bands (inside the limits, "review") amber, the value as a marker.

import { formatNumber } from '../format';
import type { CharacteristicResult } from '../types';

const W = 260;
const H = 34;
const PAD_X = 8;
const TRACK_Y = 14;

export function CharacteristicBar(props: { c: CharacteristicResult }) {
  const { c } = props;
  const pts = [c.lsl, c.usl, c.value].filter((v): v is number => v !== null && Number.isFinite(v));
  if (pts.length === 0) return <svg class="char-bar" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="no limits" />;
  let min = Math.min(...pts);
  let max = Math.max(...pts);
  let span = max - min;
  if (span === 0) span = Math.abs(max) || 1;
  let lo = min - 0.2 * span;
  const hi = max + 0.2 * span;
  // A one-sided upper limit on a non-negative score or count reads best from zero.
  if (c.lsl === null && min >= 0) lo = 0;
  min = lo;
  max = hi;
  const x = (v: number) => PAD_X + ((v - min) / (max - min)) * (W - 2 * PAD_X);
  const clampX = (v: number) => Math.max(PAD_X, Math.min(W - PAD_X, x(v)));
  // Keep limit labels inside the picture.
  const labelX = (px: number) => Math.max(34, Math.min(W - 34, px));
  const gb = c.guardBand > 0 ? c.guardBand : 0;

  const zones = [];
  if (c.lsl !== null) {
    zones.push(<rect key="below" class="zone-fail" x={PAD_X} y={TRACK_Y - 5} width={Math.max(0, x(c.lsl) - PAD_X)} height={10} />);
    if (gb) zones.push(<rect key="gb-low" class="zone-guard" x={x(c.lsl)} y={TRACK_Y - 5} width={Math.max(0, clampX(c.lsl + gb) - x(c.lsl))} height={10} />);
  }
  if (c.usl !== null) {
    zones.push(<rect key="above" class="zone-fail" x={x(c.usl)} y={TRACK_Y - 5} width={Math.max(0, W - PAD_X - x(c.usl))} height={10} />);
    if (gb) zones.push(<rect key="gb-high" class="zone-guard" x={clampX(c.usl - gb)} y={TRACK_Y - 5} width={Math.max(0, x(c.usl) - clampX(c.usl - gb))} height={10} />);
  }

  const label = `${c.name}: value ${formatNumber(c.value)}, LSL ${formatNumber(c.lsl)}, USL ${formatNumber(c.usl)}, guard band ${formatNumber(c.guardBand)} → ${c.result}`;
  return (
    <svg class="char-bar" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
      <title>{label}</title>
      <rect class="track" x={PAD_X} y={TRACK_Y - 5} width={W - 2 * PAD_X} height={10} />
      {zones}
      {c.lsl !== null ? (
        <g class="limit">
          <line x1={x(c.lsl)} x2={x(c.lsl)} y1={TRACK_Y - 9} y2={TRACK_Y + 9} />
          <text x={labelX(x(c.lsl))} y={H - 2} text-anchor="middle">
            LSL {formatNumber(c.lsl)}
          </text>
        </g>
      ) : null}
      {c.usl !== null ? (
        <g class="limit">
          <line x1={x(c.usl)} x2={x(c.usl)} y1={TRACK_Y - 9} y2={TRACK_Y + 9} />
          <text x={labelX(x(c.usl))} y={H - 2} text-anchor="middle">
            USL {formatNumber(c.usl)}
          </text>
        </g>
      ) : null}
      {c.value !== null ? (
        <g class={`marker marker-${c.result}`}>
          <path d={`M ${clampX(c.value)} ${TRACK_Y - 7} l 6 7 l -6 7 l -6 -7 z`} />
        </g>
      ) : null}
    </svg>
  );
}
