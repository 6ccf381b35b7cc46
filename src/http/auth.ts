import { timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { hasRole, type Principal, type Role } from '../access/roles.js';
import type { Database } from '../db/database.js';
import { findSession, type Session } from '../db/sessions.js';
import { authenticate } from '../db/users.js';
import { HttpError } from './errors.js';

declare module 'express-serve-static-core' {
  interface Request { principal?: Principal; session?: Session }
}

export const sessionCookie = 'visq_session';
const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Resolves `Authorization: Bearer …` (stations, API clients) or the workbench's session cookie
 * to a station or a person; 401 when neither is valid. A cookie is sent by the browser on its own,
 * so a request that changes something must also prove it comes from our page: the session's
 * CSRF token in `X-CSRF-Token` (a bearer header cannot be forged cross-site, so it needs none).
 */
export function authenticated(db: Database): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization');
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (!m) throw new HttpError(401, 'unauthorized', 'the Authorization header must be "Bearer <key>"', { 'WWW-Authenticate': 'Bearer' });
      const principal = await authenticate(db, m[1]!);
      if (!principal) throw new HttpError(401, 'unauthorized', 'the key or token is not valid', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
      req.principal = principal;
      return next();
    }
    const cookie = req.cookies?.[sessionCookie] as string | undefined;
    if (cookie === undefined) throw new HttpError(401, 'unauthorized', 'missing "Authorization: Bearer <key>" header or sign-in session', { 'WWW-Authenticate': 'Bearer' });
    const session = await findSession(db, cookie);
    if (!session) throw new HttpError(401, 'session_expired', 'the sign-in session has ended; sign in again');
    if (!safeMethods.has(req.method) && !sameToken(req.get('x-csrf-token'), session.csrfToken)) {
      throw new HttpError(403, 'csrf_token_invalid', 'this request needs the session\'s X-CSRF-Token header');
    }
    req.principal = { kind: 'user', username: session.username, role: session.role };
    req.session = session;
    next();
  };
}

/** Constant-time comparison of a secret a client sent with the one expected. */
export function sameToken(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export const stationOnly: RequestHandler = (req, _res, next) => {
  if (req.principal?.kind !== 'station') throw new HttpError(403, 'forbidden', 'only a camera station key may post images');
  next();
};

export function role(needed: Role): RequestHandler {
  return (req, _res, next) => {
    const p = req.principal!;
    if (p.kind === 'station') throw new HttpError(403, 'forbidden', 'a station key may only post images');
    if (!hasRole(p, needed)) throw new HttpError(403, 'forbidden', `this needs the ${needed} role; ${p.username} is a ${p.role}`);
    next();
  };
}

export function username(req: Request): string {
  const p = req.principal!;
  if (p.kind !== 'user') throw new HttpError(403, 'forbidden', 'only a person can do this');
  return p.username;
}
