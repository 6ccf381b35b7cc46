import { describe, expect, it } from 'vitest';
import * as errors from '../../src/errors.js';
import { ImageNotFoundError } from '../../src/images/image-store.js';
import { ConfigError } from '../../src/app/config.js';
import { domainErrorStatus, HttpError, toHttpError } from '../../src/http/errors.js';

describe('errors a client can act on, as HTTP answers', () => {
  it('every kind of domain error has its status: none falls through to a 500', () => {
    const kinds = Object.values(errors).filter((e): e is typeof errors.DomainError => typeof e === 'function' && e.prototype instanceof errors.DomainError);
    expect(kinds.length).toBeGreaterThanOrEqual(8);
    for (const kind of kinds) expect(domainErrorStatus.has(kind), kind.name).toBe(true);
  });

  it.each([
    [new errors.InvalidInputError('invalid_field', 'serial: required'), 400, 'invalid_field'],
    [new errors.SignatureError('invalid_signature', 'wrong password'), 403, 'invalid_signature'],
    [new errors.NotFoundError('not_found', 'no inspection x'), 404, 'not_found'],
    [new ImageNotFoundError('image_not_found', 'image x is not in the store'), 404, 'image_not_found'],
    [new errors.ConflictError('already_disposed', 'disposed already'), 409, 'already_disposed'],
    [new errors.ImageTooLargeError('image_too_large', 'too many pixels'), 413, 'image_too_large'],
    [new errors.UnsupportedImageError('corrupt_image', 'truncated'), 415, 'corrupt_image'],
    [new errors.NoQualityPlanError('no plan for PN-9'), 422, 'no_quality_plan'],
    [new ConfigError('invalid_configuration', 'VISQ_HTTP_PORT: not a port'), 400, 'invalid_configuration'],
  ])('%s → %i', (err, status, code) => {
    expect(toHttpError(err)).toMatchObject({ status, code, message: err.message });
  });

  it('an overload says when to retry', () => {
    expect(toHttpError(new errors.OverloadedError('5001 waiting', 5))).toMatchObject({ status: 503, code: 'overloaded', headers: { 'Retry-After': '5' } });
  });

  it('a full image store is a 507 that says when to retry; a removed image is gone (410)', () => {
    expect(toHttpError(new errors.InsufficientStorageError('the image store holds 1 GiB of its 1 GiB quota', 10)))
      .toMatchObject({ status: 507, code: 'insufficient_storage', headers: { 'Retry-After': '10' } });
    expect(toHttpError(new errors.GoneError('image_removed', 'removed by the retention policy (quota): …'))).toMatchObject({ status: 410, code: 'image_removed', headers: {} });
  });

  it('upload parsing and body problems, a backing service away, and the unexpected', () => {
    expect(toHttpError({ name: 'MulterError', code: 'LIMIT_FILE_SIZE' })).toMatchObject({ status: 413, code: 'image_too_large' });
    expect(toHttpError({ type: 'entity.parse.failed' })).toMatchObject({ status: 400, code: 'invalid_json' });
    expect(toHttpError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toMatchObject({ status: 503, code: 'unavailable' });
    const internal = toHttpError(new TypeError('x is undefined'));
    expect(internal).toMatchObject({ status: 500, code: 'internal', message: 'internal error' });
    expect(toHttpError(new HttpError(401, 'unauthorized', 'no key'))).toMatchObject({ status: 401 });
  });
});
