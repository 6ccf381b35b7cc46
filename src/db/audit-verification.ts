import { decisionRecordDifferences } from '../inspection/decision-record.js';
import { OutboxChainCheck, verifyChain, type AuditEntry } from './audit-chain.js';
import { findRecordsDisagreeingWithAudit, readAuditTrail } from './audit-trail.js';
import type { Queryable } from './database.js';
import { roleWarnings } from './database-roles.js';
import { readDecisionRecords } from './inspections.js';
import { readOutboxChain } from './outbox.js';

export interface AuditVerification {
  intact: boolean;
  entries: number;
  lastHash: string | null;
  /** The outbox's chain: how many verdict messages, and the newest one's hash. */
  messages: number;
  lastMessageHash: string | null;
  problems: string[];
  /** Not a change, but a way one could go unseen: the database role visq runs as can disable the triggers. */
  warnings: string[];
}

/**
 * `visq audit verify`: the audit trail's chain, the signed records and accounts against their
 * entries, the outbox's chain of verdict messages, and every decided part against its first message.
 */
export async function verifyAuditTrail(db: Queryable): Promise<AuditVerification> {
  const all: AuditEntry[] = [];
  for await (const page of readAuditTrail(db)) all.push(...page);
  const problems = verifyChain(all).map((p) => p.message);
  problems.push(...await findRecordsDisagreeingWithAudit(db));

  const chain = new OutboxChainCheck();
  let messages = 0;
  let lastMessageHash: string | null = null;
  for await (const page of readOutboxChain(db)) {
    chain.add(page);
    messages += page.length;
    lastMessageHash = page[page.length - 1]!.chainHash;
  }
  problems.push(...chain.problems);

  for await (const page of readDecisionRecords(db)) {
    for (const { stored, needsReview, firstMessage } of page) {
      if (!firstMessage) {
        problems.push(`inspection ${stored.id} is decided but has no verdict message: its message was deleted`);
        continue;
      }
      const differences = decisionRecordDifferences(stored, needsReview, firstMessage.payload);
      if (differences.length) {
        problems.push(`inspection ${stored.id} no longer matches its verdict message (outbox message ${firstMessage.chainPos}) in ${differences.join(', ')}: changed outside visq`);
      }
    }
  }
  return { intact: problems.length === 0, entries: all.length, lastHash: all[all.length - 1]?.hash ?? null, messages, lastMessageHash, problems, warnings: await roleWarnings(db) };
}
