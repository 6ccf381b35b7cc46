import { describe, expect, it } from 'vitest';
import { issueCredential, parseBearer, secretMatches } from '../../src/access/credentials.js';
import { hasRole } from '../../src/access/roles.js';

describe('credentials', () => {
  it('issues unique bearer values whose secret matches only its own hash', () => {
    const a = issueCredential();
    const b = issueCredential();
    expect(a.bearer).not.toBe(b.bearer);
    const pa = parseBearer(a.bearer)!;
    expect(pa.id).toBe(a.id);
    expect(secretMatches(pa.secret, a.secretHash)).toBe(true);
    expect(secretMatches(pa.secret, b.secretHash)).toBe(false);
    expect(a.secretHash.toString('hex')).not.toContain(pa.secret);
  });

  it.each(['', 'Bearer x', 'visq_abc_def', `visq_${'g'.repeat(16)}_${'A'.repeat(43)}`, `visq_${'0'.repeat(16)}_${'A'.repeat(42)}`])('refuses a malformed value %j', (v) => {
    expect(parseBearer(v)).toBeNull();
  });

  it('ranks roles: admin ⊃ engineer ⊃ reviewer; stations have none', () => {
    const user = (role: 'reviewer' | 'engineer' | 'admin') => ({ kind: 'user' as const, username: 'u', role });
    expect(hasRole(user('reviewer'), 'reviewer')).toBe(true);
    expect(hasRole(user('reviewer'), 'engineer')).toBe(false);
    expect(hasRole(user('engineer'), 'reviewer')).toBe(true);
    expect(hasRole(user('admin'), 'engineer')).toBe(true);
    expect(hasRole({ kind: 'station', stationId: 's', site: 'x', line: 'l' }, 'reviewer')).toBe(false);
  });
});
