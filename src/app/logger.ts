import { pino } from 'pino';

/** Structured JSON logs on stdout; secrets (keys, tokens, passwords) are redacted wherever they appear. */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination: 1 | 2 = 1) {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', '*.apiKey', '*.token', '*.password', 'apiKey', 'token', 'password'],
      censor: '[redacted]',
    },
  }, pino.destination({ fd: destination, sync: destination === 2 }));
}

export type Logger = ReturnType<typeof createLogger>;
