import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * The audit trail is a hash chain: each entry's hash covers its own content and the previous
 * entry's hash, so changing an entry breaks its own hash and removing one breaks the link after it.
 */
export interface AuditContent {
  seq: number;
  /** ISO 8601 with milliseconds, as it was hashed. */
  at: string;
  actor: string;
  action: string;
  entity: string;
  reason: string | null;
  details: Record<string, unknown>;
}

export interface AuditEntry extends AuditContent {
  prevHash: string;
  hash: string;
}

/** The chain's anchor: the `prevHash` of entry 1. */
export const genesisHash = '0'.repeat(64);

export function entryHash(c: AuditContent, prevHash: string): string {
  // Exactly these fields, as RFC 8785 canonical JSON: key order and number formatting cannot change the hash.
  const canonical = canonicalize({ seq: c.seq, at: c.at, actor: c.actor, action: c.action, entity: c.entity, reason: c.reason, details: c.details, prevHash });
  return createHash('sha256').update(canonical!).digest('hex');
}

export function chainEntry(c: AuditContent, prevHash: string): AuditEntry {
  return { seq: c.seq, at: c.at, actor: c.actor, action: c.action, entity: c.entity, reason: c.reason, details: c.details, prevHash, hash: entryHash(c, prevHash) };
}

export interface AuditProblem { seq: number; problem: 'changed' | 'missing' | 'relinked'; message: string }

/** Checks entries given in `seq` order; names each entry that was changed, removed or relinked. */
export function verifyChain(entries: readonly AuditEntry[]): AuditProblem[] {
  const problems: AuditProblem[] = [];
  let expectedSeq = 1;
  let previous: AuditEntry | null = null;
  for (const e of entries) {
    if (e.seq > expectedSeq) {
      const missing = e.seq - expectedSeq === 1 ? `entry ${expectedSeq} is` : `entries ${expectedSeq}–${e.seq - 1} are`;
      problems.push({ seq: expectedSeq, problem: 'missing', message: `${missing} missing (deleted): the sequence jumps from ${expectedSeq - 1} to ${e.seq}` });
    }
    if (entryHash(e, e.prevHash) !== e.hash) {
      problems.push({ seq: e.seq, problem: 'changed', message: `entry ${e.seq} was changed: its content no longer matches its hash` });
    }
    const linkTo = previous?.hash ?? (e.seq === 1 ? genesisHash : null);
    // Across a gap the link is already reported as missing.
    if (linkTo !== null && e.seq === expectedSeq && e.prevHash !== linkTo) {
      const link = e.seq === 1 ? 'the chain\'s anchor' : `the hash of entry ${e.seq - 1}`;
      problems.push({ seq: e.seq, problem: 'relinked', message: `entry ${e.seq} does not carry ${link}: an entry before it was changed or replaced` });
    }
    previous = e;
    expectedSeq = e.seq + 1;
  }
  return problems;
}

/** One message of the outbox's hash chain (migration 1700000000007), its payload as stored. */
export interface ChainedMessage {
  chainPos: number;
  chainHash: string;
  messageId: string;
  inspectionId: string;
  stationId: string;
  payloadText: string;
}

/** Exactly as the database's outbox_chain_hash computes it. */
export function outboxMessageHash(prevHash: string, m: Omit<ChainedMessage, 'chainHash'>): string {
  return createHash('sha256').update(`${prevHash}|${m.chainPos}|${m.messageId}|${m.inspectionId}|${m.stationId}|${m.payloadText}`, 'utf8').digest('hex');
}

/**
 * Checks the outbox's chain a page at a time (messages in `chainPos` order): names each message
 * whose content no longer matches its hash and each gap where messages were deleted.
 */
export class OutboxChainCheck {
  private prevHash = genesisHash;
  private expectedPos = 1;
  readonly problems: string[] = [];

  add(page: readonly ChainedMessage[]): void {
    for (const m of page) {
      if (m.chainPos > this.expectedPos) {
        const missing = m.chainPos - this.expectedPos === 1 ? `message ${this.expectedPos} is` : `messages ${this.expectedPos}–${m.chainPos - 1} are`;
        this.problems.push(`outbox ${missing} missing (deleted): the chain jumps from ${this.expectedPos - 1} to ${m.chainPos}`);
      } else if (outboxMessageHash(this.prevHash, m) !== m.chainHash) {
        // Across a gap the link cannot hold; the gap is what is reported there.
        this.problems.push(`outbox message ${m.chainPos} (inspection ${m.inspectionId}) was changed: it no longer matches its hash`);
      }
      this.prevHash = m.chainHash;
      this.expectedPos = m.chainPos + 1;
    }
  }
}
