import { describe, expect, it } from 'vitest';
import type { OutboxMessage } from '../../src/db/outbox.js';
import { relayBatch } from '../../src/mes/relay.js';
import { Topics } from '../../src/mes/topics.js';

const message = (seq: number, stationId: string): OutboxMessage => ({ seq, messageId: `m-${seq}`, stationId, payload: { site: 's1', line: 'l1', stationId } as OutboxMessage['payload'] });

describe('relaying the outbox', () => {
  it('publishes each station’s messages in order, stations side by side', async () => {
    const published: number[] = [];
    const batch = [message(1, 'a'), message(2, 'b'), message(3, 'a'), message(4, 'b'), message(5, 'a')];
    const acked = await relayBatch(batch, async (m) => { published.push(m.seq); return true; });
    expect(acked.sort()).toEqual([1, 2, 3, 4, 5]);
    expect(published.filter((s) => [1, 3, 5].includes(s))).toEqual([1, 3, 5]);
    expect(published.filter((s) => [2, 4].includes(s))).toEqual([2, 4]);
  });

  it('stops a station at its first unacknowledged message, so nothing of it overtakes; others go on', async () => {
    const batch = [message(1, 'a'), message(2, 'a'), message(3, 'a'), message(4, 'b')];
    const acked = await relayBatch(batch, async (m) => m.seq !== 2);
    expect(acked.sort()).toEqual([1, 4]);
  });
});

describe('MQTT topics', () => {
  it('are made from the message and the installation’s prefix', () => {
    const t = new Topics('visq', 'site1');
    expect(t.verdict({ site: 'site1', line: 'line-a', stationId: 'cam-1' })).toBe('visq/site1/line-a/cam-1/verdict');
    expect(t.contexts).toBe('visq/site1/+/+/context');
    expect(t.state).toBe('visq/site1/_module/state');
    expect(t.contextOf('visq/site1/line-a/cam-1/context')).toEqual({ line: 'line-a', stationId: 'cam-1' });
  });
});
