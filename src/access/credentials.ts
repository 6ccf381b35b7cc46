import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Station keys and personal tokens look like `visq_<id>_<secret>`. The id finds the row;
 * only sha256(secret) is stored, and it is compared in constant time. The secret has
 * 256 bits of entropy, so a fast hash is enough (no password stretching needed).
 */
export interface IssuedCredential {
  id: string;
  secretHash: Buffer;
  /** The whole bearer value, shown once. */
  bearer: string;
}

const pattern = /^visq_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

export function issueCredential(): IssuedCredential {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, secretHash: hashSecret(secret), bearer: `visq_${id}_${secret}` };
}

export function parseBearer(bearer: string): { id: string; secret: string } | null {
  const m = pattern.exec(bearer);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const candidate = hashSecret(secret);
  return candidate.length === storedHash.length && timingSafeEqual(candidate, storedHash);
}

/**
 * What the audit trail records of a stored credential (a secret's hash or a password hash), so
 * `visq audit verify` sees one replaced behind visq's back. It reveals nothing usable: the
 * secrets are random and a password hash carries a random salt that the digest hides.
 */
export function credentialDigest(stored: Buffer | string | null): string | null {
  return stored === null ? null : createHash('sha256').update(stored).digest('hex');
}
