import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { hasRole, type Principal, type Role } from '../access/roles.js';
import type { Database } from '../traceability/database.js';
import { authenticate } from '../traceability/stations-and-users.js';
import { HttpError } from './errors.js';

declare module 'express-serve-static-core' {
  interface Request { principal?: Principal }
}

/** Resolves `Authorization: Bearer …` to a station or a person; 401 when missing or wrong. */
export function authenticated(db: Database): RequestHandler {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization');
    const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!m) throw new HttpError(401, 'unauthorized', 'missing "Authorization: Bearer <key>" header', { 'WWW-Authenticate': 'Bearer' });
    const principal = await authenticate(db, m[1]!);
    if (!principal) throw new HttpError(401, 'unauthorized', 'the key or token is not valid', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    req.principal = principal;
    next();
  };
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
