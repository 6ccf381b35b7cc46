import { describe, expect, it } from 'vitest';
import { disposeInspection, type DisposeDeps, type Signer } from '../../src/inspection/dispose.js';
import type { InspectionDocument } from '../../src/inspection/inspection-document.js';

const people = {
  rita: { username: 'rita', role: 'reviewer' as const, name: 'Rita Reviewer', passwordHash: 'hash-of:correct horse', integration: false, disabled: false },
  mes: { username: 'mes', role: 'reviewer' as const, name: 'MES integration', passwordHash: null, integration: true, disabled: false },
  tom: { username: 'tom', role: 'reviewer' as const, name: 'Tom', passwordHash: null, integration: false, disabled: false },
  gone: { username: 'gone', role: 'reviewer' as const, name: 'Gone', passwordHash: 'hash-of:pw', integration: false, disabled: true },
};

function fakes() {
  const signed: Signer[] = [];
  const deps: DisposeDeps = {
    findPerson: async (u) => people[u as keyof typeof people] ?? null,
    passwordMatches: async (password, stored) => stored === `hash-of:${password}`,
    recordDisposition: async (_id, signer) => { signed.push(signer); return { id: 'i-1' } as InspectionDocument; },
  };
  return { deps, signed };
}

const request = (username: string, password?: string) => ({ inspectionId: 'i-1', username, decision: 'scrap' as const, reason: 'crack', ...(password === undefined ? {} : { password }) });

describe('disposing of a flagged part with an electronic signature', () => {
  it('a person with a password signs by entering it again; the record says so', async () => {
    const f = fakes();
    await disposeInspection(f.deps, request('rita', 'correct horse'));
    expect(f.signed).toEqual([{ username: 'rita', name: 'Rita Reviewer', method: 'password' }]);
  });

  it('an integration account without a password signs with its token alone; the record says so', async () => {
    const f = fakes();
    await disposeInspection(f.deps, request('mes'));
    expect(f.signed).toEqual([{ username: 'mes', name: 'MES integration', method: 'token' }]);
  });

  it.each([
    ['no password from a person who has one', request('rita'), /sign the disposition: enter your password/],
    ['a wrong password', request('rita', 'wrong'), /the password is not correct; the disposition was not signed/],
    ['a password from an account without one', request('mes', 'anything'), /this account has no password; sign with its API token alone/],
    ['an unknown user', request('nobody', 'x'), /no user "nobody"/],
    ['a token alone from an account that is no integration', request('tom'), /no password and is not marked as an integration/],
    ['a disabled account, even with its password', request('gone', 'pw'), /no user "gone" who may sign/],
  ])('refuses %s, recording nothing', async (_name, r, message) => {
    const f = fakes();
    await expect(disposeInspection(f.deps, r)).rejects.toThrow(expect.objectContaining({ name: 'SignatureError', message: expect.stringMatching(message) }));
    expect(f.signed).toEqual([]);
  });
});
