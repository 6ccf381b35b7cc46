import { describe, expect, it } from 'vitest';
import { chainEntry, genesisHash, outboxMessageHash, OutboxChainCheck, verifyChain, type AuditEntry, type ChainedMessage } from '../../src/db/audit-chain.js';

function trail(n: number): AuditEntry[] {
  const entries: AuditEntry[] = [];
  for (let seq = 1; seq <= n; seq++) {
    entries.push(chainEntry({
      seq, at: new Date(Date.UTC(2026, 10, 22, 8, 0, seq)).toISOString(), actor: seq % 2 ? 'rita' : 'cli:root',
      action: 'inspection.disposition', entity: `inspection:${seq}`, reason: `reason ${seq}`, details: { decision: 'scrap', n: seq / 10 },
    }, entries[seq - 2]?.hash ?? genesisHash));
  }
  return entries;
}

describe('audit hash chain', () => {
  it('an untouched trail verifies', () => {
    expect(verifyChain(trail(5))).toEqual([]);
    expect(verifyChain([])).toEqual([]);
  });

  it('the hash does not depend on the order of keys in details', () => {
    const [a] = trail(1);
    const reordered = { ...a!, details: { n: 0.1, decision: 'scrap' } };
    expect(verifyChain([reordered])).toEqual([]);
  });

  it('names an entry whose content was changed', () => {
    const t = trail(5);
    t[2] = { ...t[2]!, reason: 'changed afterwards' };
    expect(verifyChain(t)).toEqual([expect.objectContaining({ seq: 3, problem: 'changed' })]);
  });

  it('a changed entry with a recomputed hash breaks the link of the next one', () => {
    const t = trail(5);
    t[2] = chainEntry({ ...t[2]!, details: { decision: 'accept' } }, t[2]!.prevHash);
    expect(verifyChain(t)).toEqual([expect.objectContaining({ seq: 4, problem: 'relinked' })]);
  });

  it('names deleted entries, in the middle and at the start', () => {
    const t = trail(6);
    expect(verifyChain([...t.slice(0, 2), ...t.slice(4)])).toEqual([expect.objectContaining({ seq: 3, problem: 'missing', message: expect.stringContaining('entries 3–4 are missing') })]);
    expect(verifyChain(t.slice(1))).toEqual([expect.objectContaining({ seq: 1, problem: 'missing' })]);
  });

  it('a first entry that does not start from the anchor is reported', () => {
    const [a] = trail(1);
    const forged = chainEntry({ ...a!, reason: 'forged' }, 'f'.repeat(64));
    expect(verifyChain([forged])).toEqual([expect.objectContaining({ seq: 1, problem: 'relinked' })]);
  });
});

describe('the outbox chain check', () => {
  const messages = (n: number): ChainedMessage[] => {
    const out: ChainedMessage[] = [];
    for (let pos = 1; pos <= n; pos++) {
      const m = { chainPos: pos, messageId: `m-${pos}`, inspectionId: `i-${pos}`, stationId: 'cam-1', payloadText: `{"serial":"SN-${pos}"}` };
      out.push({ ...m, chainHash: outboxMessageHash(out[pos - 2]?.chainHash ?? genesisHash, m) });
    }
    return out;
  };

  it('passes an untouched chain read in pages', () => {
    const check = new OutboxChainCheck();
    const all = messages(5);
    check.add(all.slice(0, 2));
    check.add(all.slice(2));
    expect(check.problems).toEqual([]);
  });

  it('names a changed message and a gap', () => {
    const all = messages(6);
    all[1] = { ...all[1]!, payloadText: '{"serial":"SN-X"}' };
    const check = new OutboxChainCheck();
    check.add([...all.slice(0, 3), ...all.slice(4)]);
    expect(check.problems).toEqual([
      'outbox message 2 (inspection i-2) was changed: it no longer matches its hash',
      'outbox message 4 is missing (deleted): the chain jumps from 3 to 5',
    ]);
  });
});
