import type pg from 'pg';
import { verifyChain, type AuditEntry } from './audit-chain.js';
import { findUnauditedRecords, readAuditTrail } from './audit-trail.js';

export interface AuditVerification { intact: boolean; entries: number; lastHash: string | null; problems: string[] }

/** `visq audit verify`: the chain, then the records that must have an entry but have none. */
export async function verifyAuditTrail(db: pg.Pool): Promise<AuditVerification> {
  const all: AuditEntry[] = [];
  for await (const page of readAuditTrail(db)) all.push(...page);
  const problems = verifyChain(all).map((p) => p.message);
  for (const record of await findUnauditedRecords(db)) problems.push(`${record} has no audit entry: its entry was deleted`);
  return { intact: problems.length === 0, entries: all.length, lastHash: all[all.length - 1]?.hash ?? null, problems };
}
