import { z } from 'zod';

/**
 * Text that ends up in MQTT payloads, MES records, reports and file names: no control characters
 * (NUL, BEL, escape sequences), no format characters (a right-to-left override U+202E makes a serial
 * read differently than it is; zero-width characters make two serials look the same), no broken
 * UTF-16 (lone surrogates).
 */
const printable = /^[^\p{Cc}\p{Cf}\p{Cs}]*$/u;

/** An identifier or a short value: one line, printable, trimmed. */
export const text = (max: number) => z.string().trim().min(1).max(max).regex(printable, 'must not contain control or format characters (such as NUL, BEL or U+202E)');

/** A person's free text (reasons for dispositions and plan changes): several lines allowed, otherwise as `text`. */
export const note = (max: number) => z.string().trim().min(1).max(max).regex(/^(?:[^\p{Cc}\p{Cf}\p{Cs}]|[\n\t])*$/u, 'must not contain control or format characters');

/** A whole number a PostgreSQL `integer` column holds (larger ones are refused as bad input, not a 500). */
export const int32 = () => z.coerce.number().int().max(2_147_483_647);
