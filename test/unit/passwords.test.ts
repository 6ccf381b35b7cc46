import { describe, expect, it } from 'vitest';
import { hashPassword, passwordMatches, passwordProblem } from '../../src/access/passwords.js';

describe('passwords', () => {
  it('a stored hash matches its password only, and two hashes of one password differ (salt)', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(a).not.toBe(b);
    expect(await passwordMatches('correct horse battery', a)).toBe(true);
    expect(await passwordMatches('correct horse batterY', a)).toBe(false);
    expect(await passwordMatches('', a)).toBe(false);
  });

  it('no stored hash never matches', async () => {
    expect(await passwordMatches('anything at all', null)).toBe(false);
  });

  it('rejects short passwords', () => {
    expect(passwordProblem('short')).toMatch(/at least 10/);
    expect(passwordProblem('long enough pw')).toBeNull();
  });
});
