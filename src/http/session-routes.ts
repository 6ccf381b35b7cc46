import express, { Router, type CookieOptions, type Request } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { z } from 'zod';
import { passwordMatches } from '../access/passwords.js';
import type { Database } from '../db/database.js';
import { FailedAttempts } from '../db/failed-attempts.js';
import { createSession, endSession } from '../db/sessions.js';
import { findPerson } from '../db/users.js';
import { sessionCookie } from './auth.js';
import { HttpError } from './errors.js';
import { InvalidInputError } from '../errors.js';
import { limitRate } from './rate-limits.js';
import { text } from '../fields.js';

const loopbackHosts = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/**
 * The cookie is `Secure` over HTTPS and on loopback (browsers treat both as secure contexts). A
 * plant network reached over plain HTTP cannot carry a Secure cookie; there the README says to
 * put TLS in front.
 */
function cookieOptions(req: Request, maxAgeSeconds: number): CookieOptions {
  return { httpOnly: true, sameSite: 'strict', path: '/', secure: req.secure || loopbackHosts.has(req.hostname), maxAge: maxAgeSeconds * 1000 };
}

/** Sign-in for the review workbench: username and password → a session cookie and its CSRF token. */
export function sessionSignInRoutes(db: Database, sessionSeconds: number): Router {
  const router = Router();
  // Slows password guessing: failed attempts per client address and username.
  const failedSignIns = limitRate({
    windowSeconds: 15 * 60,
    limit: 10,
    key: (req) => `${ipKeyGenerator(req.ip ?? '')}|${String(req.body?.username ?? '').slice(0, 64)}`,
    failed: (res) => res.statusCode >= 400,
    message: 'too many failed sign-ins; wait 15 minutes',
    store: new FailedAttempts(db, 'sign-in:'),
  });
  // And from one address whatever the usernames, so rotating them does not buy unlimited guesses.
  const failedSignInsFromAddress = limitRate({
    windowSeconds: 15 * 60,
    limit: 100,
    key: (req) => ipKeyGenerator(req.ip ?? ''),
    failed: (res) => res.statusCode >= 400,
    message: 'too many failed sign-ins from this address; wait 15 minutes',
    store: new FailedAttempts(db, 'sign-in-address:'),
  });
  const credentials = z.object({ username: text(64), password: z.string().min(1).max(1024) }).strict();

  router.post('/session', express.json({ limit: '4kb' }), failedSignInsFromAddress, failedSignIns, async (req, res) => {
    const body = credentials.safeParse(req.body);
    if (!body.success) throw new InvalidInputError('invalid_credentials_format', 'send {"username": "…", "password": "…"}');
    const person = await findPerson(db, body.data.username);
    // A disabled account gets the same answer as a wrong password: nothing to learn from trying.
    if (!(await passwordMatches(body.data.password, person?.passwordHash ?? null)) || !person || person.disabled) {
      req.log.warn({ username: body.data.username }, 'sign-in refused');
      throw new HttpError(401, 'invalid_credentials', 'the username or password is not correct');
    }
    const session = await createSession(db, person.username, sessionSeconds);
    req.log.info({ username: person.username }, 'signed in');
    res.cookie(sessionCookie, session.cookieValue, cookieOptions(req, sessionSeconds))
      .json({ username: person.username, role: person.role, name: person.name, csrfToken: session.csrfToken });
  });
  return router;
}

/** Who is signed in, and signing out; behind authentication. */
export function sessionRoutes(db: Database): Router {
  const router = Router();
  router.get('/session', async (req, res) => {
    const p = req.principal!;
    if (p.kind !== 'user') throw new HttpError(403, 'forbidden', 'a station key may only post images');
    // A cookie session already carries the name; a bearer token does not.
    const name = req.session?.name ?? (await findPerson(db, p.username))?.name ?? p.username;
    res.json({ username: p.username, role: p.role, name, csrfToken: req.session?.csrfToken ?? null });
  });
  router.delete('/session', async (req, res) => {
    const cookie = req.cookies?.[sessionCookie] as string | undefined;
    if (cookie) await endSession(db, cookie);
    res.clearCookie(sessionCookie, { ...cookieOptions(req, 0), maxAge: undefined }).status(204).end();
  });
  return router;
}
