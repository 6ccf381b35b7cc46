import type { Request, RequestHandler, Response } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import { HttpError } from './errors.js';

interface Limit {
  windowSeconds: number;
  limit: number;
  key: (req: Request) => string;
  /** The 429's message. */
  message: string;
  /** Count only the requests that failed this way (guessing); without it every request counts. */
  failed?: (res: Response) => boolean;
  /** Where the counts live: in this process (the default), or shared (FailedAttempts in PostgreSQL). */
  store?: Store;
}

/** A rate limit answering 429 with the contract's error body and `Retry-After`. */
export function limitRate(o: Limit): RequestHandler {
  return rateLimit({
    windowMs: o.windowSeconds * 1000,
    limit: o.limit,
    keyGenerator: o.key,
    ...(o.store ? { store: o.store } : {}),
    ...(o.failed ? { skipSuccessfulRequests: true, requestWasSuccessful: (_req: Request, res: Response) => !o.failed!(res) } : {}),
    handler: () => { throw new HttpError(429, 'rate_limited', o.message, { 'Retry-After': String(o.windowSeconds) }); },
    standardHeaders: 'draft-7',
    legacyHeaders: false,
  });
}
