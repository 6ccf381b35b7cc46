import type { Queryable, Transaction } from './database.js';
import { chainEntry, genesisHash, type AuditEntry } from './audit-chain.js';


export interface AuditEvent {
  /** A username, or `cli:<os user>` for the command line. */
  actor: string;
  action:
    | 'plan.version' | 'inspection.disposition'
    | 'station.add' | 'station.key' | 'station.disable' | 'station.enable'
    | 'user.add' | 'user.password' | 'user.role' | 'user.disable' | 'user.enable' | 'user.integration' | 'user.token' | 'user.token.revoke'
    | 'lot.hold' | 'lot.release' | 'image.pin' | 'image.unpin';
  entity: string;
  reason: string | null;
  details: Record<string, unknown>;
}

/**
 * Appends an entry in the caller's transaction, so the change and its audit entry commit together.
 * A transaction-scoped lock keeps the chain linear when several processes append at once.
 */
export async function appendAudit(tx: Transaction, event: AuditEvent): Promise<AuditEntry> {
  await tx.query("SELECT pg_advisory_xact_lock(hashtext('visq:audit_trail'))");
  const last = await tx.query<{ seq: number; hash: string }>('SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1');
  const entry = chainEntry({
    seq: (last.rows[0]?.seq ?? 0) + 1,
    at: new Date().toISOString(),
    ...event,
    // JSON round trip: what is hashed is exactly what jsonb gives back (no undefined, no Dates).
    details: JSON.parse(JSON.stringify(event.details)),
  }, last.rows[0]?.hash ?? genesisHash);
  await tx.query(
    'INSERT INTO audit_trail (seq, at, actor, action, entity, reason, details, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)',
    [entry.seq, entry.at, entry.actor, entry.action, entry.entity, entry.reason, JSON.stringify(entry.details), entry.prevHash, entry.hash],
  );
  return entry;
}

interface AuditRow { seq: number; at: Date; actor: string; action: string; entity: string; reason: string | null; details: Record<string, unknown>; prev_hash: string; hash: string }

const toEntry = (r: AuditRow): AuditEntry => ({
  seq: Number(r.seq), at: new Date(r.at).toISOString(), actor: r.actor, action: r.action, entity: r.entity,
  reason: r.reason, details: r.details, prevHash: r.prev_hash, hash: r.hash,
});

/** Newest first, for people reading the trail. */
export async function listAuditEntries(db: Queryable, before: number | null, limit: number): Promise<AuditEntry[]> {
  const r = await db.query<AuditRow>('SELECT * FROM audit_trail WHERE ($1::bigint IS NULL OR seq < $1) ORDER BY seq DESC LIMIT $2', [before, limit]);
  return r.rows.map(toEntry);
}

/** The whole trail in `seq` order, a page at a time, for verification. */
export async function* readAuditTrail(db: Queryable, pageSize = 1000): AsyncGenerator<AuditEntry[]> {
  let after = 0;
  for (;;) {
    const r = await db.query<AuditRow>('SELECT * FROM audit_trail WHERE seq > $1 ORDER BY seq LIMIT $2', [after, pageSize]);
    if (r.rows.length === 0) return;
    const page = r.rows.map(toEntry);
    yield page;
    after = page[page.length - 1]!.seq;
  }
}

/**
 * Signed records and accounts checked against their audit entries: a record without its entry
 * (the newest entries deleted, which the chain alone cannot see) or one that no longer says what
 * its entry says (the record itself edited). Records older than the audit trail are not checked.
 */
export async function findRecordsDisagreeingWithAudit(db: Queryable): Promise<string[]> {
  const r = await db.query<{ problem: string }>(`
    WITH start AS (SELECT min(started_at) AS at FROM audit_trail_start)
    SELECT 'disposition of inspection ' || d.inspection_id || CASE WHEN a.seq IS NULL THEN ' has no audit entry: its entry was deleted'
             ELSE ' does not match audit entry ' || a.seq || ': one of them was changed' END AS problem
    FROM dispositions d CROSS JOIN start
    LEFT JOIN audit_trail a ON a.action = 'inspection.disposition' AND a.entity = 'inspection:' || d.inspection_id
    WHERE d.decided_at >= start.at AND (a.seq IS NULL OR a.actor <> d.username OR a.reason IS DISTINCT FROM d.reason
      OR a.details->>'decision' <> d.decision OR a.details->>'finalVerdict' <> d.final_verdict
      OR a.details->>'signer' IS DISTINCT FROM d.signer_name OR a.details->>'meaning' IS DISTINCT FROM d.meaning
      OR a.details->>'signedWith' IS DISTINCT FROM d.signed_with)
    UNION ALL
    SELECT 'quality plan ' || p.part_number || coalesce(nullif(' operation ' || p.operation, ' operation '), '') || ' version ' || p.version
      || CASE WHEN a.seq IS NULL THEN ' has no audit entry: its entry was deleted' ELSE ' does not match audit entry ' || a.seq || ': one of them was changed' END
    FROM quality_plans p CROSS JOIN start
    LEFT JOIN audit_trail a ON a.action = 'plan.version' AND a.entity = ${planEntitySql('p')}
    WHERE p.created_at >= start.at AND (a.seq IS NULL OR a.details->'plan' <> p.document OR a.reason IS DISTINCT FROM p.reason)
    UNION ALL
    SELECT 'user ' || u.username || ' has no audit entry: its entry was deleted' FROM users u CROSS JOIN start
    WHERE u.created_at >= start.at AND NOT EXISTS (SELECT 1 FROM audit_trail a WHERE a.action = 'user.add' AND a.entity = 'user:' || u.username)
    UNION ALL
    SELECT 'station ' || s.station_id || ' has no audit entry: its entry was deleted' FROM stations s CROSS JOIN start
    WHERE s.created_at >= start.at AND NOT EXISTS (SELECT 1 FROM audit_trail a WHERE a.action = 'station.add' AND a.entity = 'station:' || s.station_id)
    UNION ALL
    SELECT 'user ' || substr(a.entity, 6) || ' was deleted outside visq: audit entry ' || a.seq || ' added it' FROM audit_trail a
    WHERE a.action = 'user.add' AND NOT EXISTS (SELECT 1 FROM users u WHERE 'user:' || u.username = a.entity)
    UNION ALL
    SELECT 'station ' || substr(a.entity, 9) || ' was deleted outside visq: audit entry ' || a.seq || ' added it' FROM audit_trail a
    WHERE a.action = 'station.add' AND NOT EXISTS (SELECT 1 FROM stations s WHERE 'station:' || s.station_id = a.entity)
    UNION ALL
    ${accountChecks('user', 'users u', "'user:' || u.username", [
      ['role', "action IN ('user.add', 'user.role')", "a.details->>'role' IS DISTINCT FROM u.role"],
      ['integration flag', "action IN ('user.add', 'user.integration')", "(a.details->>'integration')::boolean IS DISTINCT FROM u.integration"],
      ['disabled state', "action IN ('user.add', 'user.disable', 'user.enable')", "(a.action = 'user.disable') IS DISTINCT FROM (u.disabled_at IS NOT NULL)"],
      ['API token', "details ? 'tokenDigest'", "a.details->>'tokenDigest' IS DISTINCT FROM encode(sha256(u.token_hash), 'hex')"],
      ['password', "details ? 'passwordDigest'", "a.details->>'passwordDigest' IS DISTINCT FROM encode(sha256(convert_to(u.password_hash, 'UTF8')), 'hex')"],
    ])}
    UNION ALL
    ${accountChecks('station', 'stations s', "'station:' || s.station_id", [
      ['site', "action = 'station.add'", "a.details->>'site' IS DISTINCT FROM s.site"],
      ['line', "action = 'station.add'", "a.details->>'line' IS DISTINCT FROM s.line"],
      ['disabled state', "action IN ('station.add', 'station.disable', 'station.enable')", "(a.action = 'station.disable') IS DISTINCT FROM (s.disabled_at IS NOT NULL)"],
      ['API key', "details ? 'keyDigest'", "a.details->>'keyDigest' IS DISTINCT FROM encode(sha256(s.key_hash), 'hex')"],
    ])}
    ORDER BY 1`);
  return r.rows.map((row) => row.problem);
}

/**
 * Each account as its latest audit entries left it, one check per property: `where` picks the
 * entries that set it, `differs` compares the newest with the row (`a`: the entry). An account
 * changed with plain SQL (a role raised, a line moved, a key or password replaced) shows here.
 * Properties no entry sets yet (entries older than the field) are not checked.
 */
function accountChecks(kind: string, table: string, entity: string, checks: [what: string, where: string, differs: string][]): string {
  const alias = table.split(' ')[1]!;
  const key = kind === 'user' ? `${alias}.username` : `${alias}.station_id`;
  return checks.map(([what, where, differs]) => `
    SELECT '${kind} ' || ${key} || ': its ${what} is not what audit entry ' || a.seq || ' recorded: changed outside visq'
    FROM ${table} CROSS JOIN LATERAL (SELECT seq, action, details FROM audit_trail WHERE entity = ${entity} AND ${where} ORDER BY seq DESC LIMIT 1) a
    WHERE ${differs}`).join('\n    UNION ALL');
}

export function planEntity(partNumber: string, operation: string | null, version: number): string {
  return `quality_plan:${partNumber}:${operation ?? ''}:${version}`;
}
const planEntitySql = (t: string) => `'quality_plan:' || ${t}.part_number || ':' || ${t}.operation || ':' || ${t}.version`;
