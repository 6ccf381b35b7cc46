import type { OutboxMessage } from '../db/outbox.js';

/**
 * Publishes one batch of outbox messages (in `seq` order): each station's messages in order, the
 * stations side by side. A station whose message is not acknowledged stops there, so that nothing
 * of it overtakes; its rest waits for the next round. Returns the `seq` of every acknowledged message.
 */
export async function relayBatch(batch: readonly OutboxMessage[], publish: (m: OutboxMessage) => Promise<boolean>): Promise<number[]> {
  const byStation = new Map<string, OutboxMessage[]>();
  for (const m of batch) {
    const messages = byStation.get(m.stationId);
    if (messages) messages.push(m);
    else byStation.set(m.stationId, [m]);
  }
  const acked: number[] = [];
  await Promise.all([...byStation.values()].map(async (messages) => {
    for (const m of messages) {
      if (!(await publish(m))) return;
      acked.push(m.seq);
    }
  }));
  return acked;
}
