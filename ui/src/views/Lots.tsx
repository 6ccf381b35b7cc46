// Lots, most recent first, each linking to its summary.

import { ErrorText, Loading, useGet } from '../components/common';
import { formatTime } from '../format';
import { href, navigate } from '../router';
import type { LotListItem } from '../types';
import { useState } from 'preact/hooks';

export function LotsView() {
  const lots = useGet<{ lots: LotListItem[] }>('/v1/lots?limit=50');
  const [lotId, setLotId] = useState('');
  return (
    <div>
      <div class="view-head">
        <h1>Lots</h1>
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (lotId.trim()) navigate(href.lot(lotId.trim()));
          }}
        >
          <label for="lot-open">Open lot</label>
          <input id="lot-open" value={lotId} onInput={(e) => setLotId(e.currentTarget.value)} placeholder="Lot id" />
          <button type="submit">Open</button>
        </form>
      </div>
      <ErrorText error={lots.error} />
      {lots.loading ? <Loading what="lots" /> : null}
      {lots.data && lots.data.lots.length === 0 ? <p class="empty">No lots yet.</p> : null}
      {lots.data && lots.data.lots.length > 0 ? (
        <table class="grid" data-testid="lots-table">
          <thead>
            <tr>
              <th>Lot</th>
              <th>Part numbers</th>
              <th class="num">Inspections</th>
              <th>Last received</th>
            </tr>
          </thead>
          <tbody>
            {lots.data.lots.map((l) => (
              <tr key={l.lotId} data-testid="lot-row" data-id={l.lotId}>
                <td>
                  <a href={href.lot(l.lotId)}>{l.lotId}</a>
                </td>
                <td>{l.partNumbers.join(', ')}</td>
                <td class="num">{l.inspections}</td>
                <td>{formatTime(l.lastReceivedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
