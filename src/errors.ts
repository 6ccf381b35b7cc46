/**
 * The errors a caller can act on, raised by use cases and repositories alike. Each has a `code`
 * for machines (the contract's `{"error": {"code"}}`) and a message that says what is wrong and
 * what to do. The HTTP layer maps each class to a status (http/errors.ts); the command line exits 2
 * for all of them (CONTRACT.md "Command line": bad usage or input). Anything else is unexpected:
 * a 500, or exit 1.
 */
export class DomainError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A missing or malformed field, argument or option. */
export class InvalidInputError extends DomainError {}

/** What the request names does not exist. */
export class NotFoundError extends DomainError {}

/** The request contradicts what is stored (it exists already, it was disposed already, …). */
export class ConflictError extends DomainError {}

/** A person's electronic signature (password or token) does not hold. */
export class SignatureError extends DomainError {}

/** An image larger than the limits (bytes, pixels). */
export class ImageTooLargeError extends DomainError {}

/** Not an image visq can read, or one the models cannot use (corrupt, unsupported, too few channels). */
export class UnsupportedImageError extends DomainError {}

/** A well-formed request that contradicts what the same caller sent before (a reused Idempotency-Key). */
export class UnprocessableError extends DomainError {}

/** No quality plan for the part: nothing to judge it by (CONTRACT.md: 422 `no_quality_plan`). */
export class NoQualityPlanError extends DomainError {
  constructor(message: string) {
    super('no_quality_plan', message);
  }
}

/** More work waiting than the system takes: retry after `retryAfterSeconds`. */
export class OverloadedError extends DomainError {
  constructor(message: string, readonly retryAfterSeconds: number, code = 'overloaded') {
    super(code, message);
  }
}

/** One caller (a station) asks for more at once than it may: retry after `retryAfterSeconds`. */
export class TooManyRequestsError extends DomainError {
  constructor(code: string, message: string, readonly retryAfterSeconds: number) {
    super(code, message);
  }
}

/** The image store has no room for more (its quota, or the volume's free-space floor): retry after `retryAfterSeconds`. */
export class InsufficientStorageError extends DomainError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super('insufficient_storage', message);
  }
}

/** What the request names existed and was removed on purpose (an image past its retention): the message says when and why. */
export class GoneError extends DomainError {}
