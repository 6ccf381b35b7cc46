import { pino } from 'pino';

/** Structured JSON logs on stdout; secrets (keys, tokens, passwords) are redacted wherever they appear. */
export function createLogger(level: string, base: Record<string, unknown> = {}) {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', '*.apiKey', '*.token', '*.password', 'apiKey', 'token', 'password'],
      censor: '[redacted]',
    },
  });
}

export type Logger = ReturnType<typeof createLogger>;
