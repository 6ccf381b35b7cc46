import type pg from 'pg';
import { verifyChain, type AuditEntry } from './audit-chain.js';
import { findRecordsDisagreeingWithAudit, readAuditTrail } from './audit-trail.js';

export interface AuditVerification { intact: boolean; entries: number; lastHash: string | null; problems: string[] }

/** `visq audit verify`: the chain, then the signed records and accounts against their entries. */
export async function verifyAuditTrail(db: pg.Pool): Promise<AuditVerification> {
  const all: AuditEntry[] = [];
  for await (const page of readAuditTrail(db)) all.push(...page);
  const problems = verifyChain(all).map((p) => p.message);
  problems.push(...await findRecordsDisagreeingWithAudit(db));
  return { intact: problems.length === 0, entries: all.length, lastHash: all[all.length - 1]?.hash ?? null, problems };
}
