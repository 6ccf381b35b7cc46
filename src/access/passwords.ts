import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Passwords (for the workbench sign-in and electronic signatures) are stored as scrypt hashes:
 * `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>`. Unlike API secrets they are chosen by people, so
 * they need a slow, memory-hard hash.
 */
const params = { N: 2 ** 15, r: 8, p: 1 };
const keyLength = 32;
export const minPasswordLength = 10;

function scrypt(password: string, salt: Buffer, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password.normalize('NFC'), salt, keyLength, { ...o, maxmem: 128 * o.N! * o.r! * 2 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Null when the password is acceptable, else why not. */
export function passwordProblem(password: string): string | null {
  if (password.length < minPasswordLength) return `a password needs at least ${minPasswordLength} characters`;
  if (password.length > 1024) return 'a password may have at most 1024 characters';
  return null;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64'), key.toString('base64')].join('$');
}

export async function passwordMatches(password: string, stored: string | null): Promise<boolean> {
  // Without a stored hash, still spend the time, so a missing account looks like a wrong password.
  const [scheme, n, r, p, salt, hash] = (stored ?? dummyHash).split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await scrypt(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p) });
  return stored !== null && key.length === expected.length && timingSafeEqual(key, expected);
}

const dummyHash = `scrypt$${params.N}$${params.r}$${params.p}$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(keyLength).toString('base64')}`;
