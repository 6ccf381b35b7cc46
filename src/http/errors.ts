import type { ErrorRequestHandler } from 'express';
import type { z } from 'zod';
import type { Logger } from '../app/logger.js';
import {
  ConflictError, DomainError, GoneError, ImageTooLargeError, InsufficientStorageError, InvalidInputError, NoQualityPlanError, NotFoundError, OverloadedError,
  SignatureError, TooManyRequestsError, UnprocessableError, UnsupportedImageError,
} from '../errors.js';
import { describeIssues } from '../validation-issues.js';

/**
 * An error of HTTP itself (credentials, CSRF, rate limits, a route or media type that does not
 * exist); everything else a client can act on is a DomainError, mapped below. Both become
 * `{"error": {"code", "message"}}`.
 */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** Parses a query string or body with a zod schema; an InvalidInputError with `code` that names every problem otherwise. */
export function parseOr400<S extends z.ZodType>(schema: S, value: unknown, code: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new InvalidInputError(code, describeIssues(r.error, 'body').join('; '));
  return r.data;
}

/** Every DomainError's status (CONTRACT.md "HTTP API"); a class missing here is a 500, and a test checks none is. */
export const domainErrorStatus = new Map<abstract new (...args: never[]) => DomainError, number>([
  [InvalidInputError, 400],
  [SignatureError, 403],
  [NotFoundError, 404],
  [ConflictError, 409],
  [GoneError, 410],
  [ImageTooLargeError, 413],
  [UnsupportedImageError, 415],
  [NoQualityPlanError, 422],
  [UnprocessableError, 422],
  [TooManyRequestsError, 429],
  [OverloadedError, 503],
  [InsufficientStorageError, 507],
]);

/** Maps errors from express, body parsers and multer to the contract's JSON errors. */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = toHttpError(err);
    if (e.status >= 500) (req.log ?? log).error({ err }, 'request failed');
    if (res.headersSent) return;
    res.status(e.status).set(e.headers).json({ error: { code: e.code, message: e.message } });
  };
}

export function toHttpError(err: any): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof DomainError) {
    for (const [type, status] of domainErrorStatus) {
      if (err instanceof type) {
        const retryAfter: Record<string, string> = err instanceof OverloadedError || err instanceof TooManyRequestsError || err instanceof InsufficientStorageError
          ? { 'Retry-After': String(err.retryAfterSeconds) } : {};
        return new HttpError(status, err.code, err.message, retryAfter);
      }
    }
  }
  // multer
  if (err?.name === 'MulterError') {
    switch (err.code) {
      case 'LIMIT_FILE_SIZE': return new HttpError(413, 'image_too_large', 'an image is larger than the upload limit');
      case 'LIMIT_FILE_COUNT': return new HttpError(413, 'too_many_images', 'too many images in one inspection');
      case 'LIMIT_FIELD_COUNT':
      case 'LIMIT_PART_COUNT': return new HttpError(413, 'too_many_fields', 'too many multipart fields');
      case 'LIMIT_FIELD_VALUE':
      case 'LIMIT_FIELD_KEY': return new HttpError(400, 'invalid_field', `a form field is too long (${err.field ?? 'unnamed'})`);
      case 'LIMIT_UNEXPECTED_FILE': return new HttpError(400, 'invalid_field', `unexpected file field "${err.field}": images go in fields named "image"`);
      default: return new HttpError(400, 'invalid_multipart', err.message);
    }
  }
  if (typeof err?.message === 'string' && /Multipart: Boundary not found|Unexpected end of form|Malformed part header/i.test(err.message)) {
    return new HttpError(400, 'invalid_multipart', `malformed multipart body: ${err.message}`);
  }
  // body-parser (express.raw / express.json)
  if (err?.type === 'entity.too.large') return new HttpError(413, 'body_too_large', `the body is larger than the limit of ${err.limit} bytes`);
  if (err?.type === 'entity.parse.failed') return new HttpError(400, 'invalid_json', 'the body is not valid JSON');
  if (err?.type === 'encoding.unsupported' || err?.type === 'charset.unsupported') return new HttpError(415, 'unsupported_encoding', err.message);
  if (typeof err?.status === 'number' && err.status >= 400 && err.status < 500) return new HttpError(err.status, 'bad_request', err.message);
  // The database or queue is away: the client may retry later; nothing was accepted.
  if (isUnavailable(err)) return new HttpError(503, 'unavailable', 'a backing service (database or queue) is unavailable; retry later', { 'Retry-After': '5' });
  return new HttpError(500, 'internal', 'internal error');
}

function isUnavailable(err: any): boolean {
  const code = err?.code;
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P03', '08006', '08001', '08003'].includes(code) ||
    /Connection terminated|connection timeout|Connection is closed|Stream isn't writeable/i.test(err?.message ?? '');
}
