import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '../app/logger.js';

/**
 * The embedded MQTT broker for a first run and for tests (CONTRACT.md: without MQTT_URL, `visq
 * start` and `visq demo` run their own; the embedded PostgreSQL is in embedded-postgres.ts).
 * Production sets the URLs.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningService { url: string; stop(): Promise<void> }

/**
 * The embedded broker, on loopback. Given credentials, a client must present them (the embedded
 * broker of `visq start` always asks; the test setup's stand-in for Mosquitto does not).
 */
export async function startEmbeddedBroker(port: number, log: Logger, credentials?: { username: string; password: string }): Promise<RunningService> {
  const broker = await Aedes.createBroker(credentials ? {
    authenticate: (_client, username, password, done) => {
      const ok = username === credentials.username && password !== undefined && sameSecret(password, credentials.password);
      done(ok ? null : Object.assign(new Error('bad username or password'), { returnCode: 4 }), ok);
    },
  } : {});
  const server = net.createServer(broker.handle as (socket: net.Socket) => void);
  const usePort = await new Promise<number>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot start the embedded MQTT broker on port ${port} (set VISQ_EMBEDDED_MQTT_PORT, or MQTT_URL for an external broker): ${err.message}`)));
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
  log.info({ port: usePort }, 'embedded MQTT broker started');
  const auth = credentials ? `${encodeURIComponent(credentials.username)}:${encodeURIComponent(credentials.password)}@` : '';
  return {
    url: `mqtt://${auth}127.0.0.1:${usePort}`,
    stop: () => new Promise((resolve) => broker.close(() => server.close(() => resolve()))),
  };
}

function sameSecret(given: Buffer, expected: string): boolean {
  const b = Buffer.from(expected);
  return given.length === b.length && timingSafeEqual(given, b);
}
