import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { freePort } from '../../src/embedded/embedded-services.js';

export type Stop = () => Promise<void>;

/** `tls`: for a `rediss://` URL whose certificate needs a private CA. */
export async function redisUp(url: string, tls?: { ca: string }): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(tls ? { tls } : {}) });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function mqttUp(url: string): Promise<boolean> {
  try {
    const c = await mqtt.connectAsync(url, { connectTimeout: 1500, reconnectPeriod: 0 });
    await c.endAsync();
    return true;
  } catch {
    return false;
  }
}

/** Starts a program from PATH and returns how to stop it; rejects when it cannot be started. */
export async function startProgram(command: string, args: string[]): Promise<{ child: ChildProcess; stop: Stop }> {
  const child = spawn(command, args, { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start ${command}: ${err.message}`)));
    child.once('spawn', () => resolve());
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function startRedis(): Promise<{ url: string; stop: Stop }> {
  const port = await freePort();
  const { stop } = await startProgram('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const url = `redis://127.0.0.1:${port}`;
  await until(() => redisUp(url), 'redis-server to listen');
  return { url, stop };
}

/**
 * A Mosquitto of the caller's own (tests that stop and restart the broker use one). With a
 * persistence directory it keeps sessions and queued QoS 1 messages across restarts, as a plant's
 * broker should.
 */
export async function startMosquitto(port?: number, persistenceDir?: string): Promise<{ url: string; port: number; stop: Stop }> {
  const p = port ?? (await freePort());
  let args = ['-p', String(p)];
  if (persistenceDir) {
    // Started as root, mosquitto drops to its own user, which must be able to write its database here.
    await chmod(persistenceDir, 0o777);
    const conf = path.join(persistenceDir, 'mosquitto.conf');
    await writeFile(conf, `listener ${p} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${persistenceDir}/\n`);
    args = ['-c', conf];
  }
  const { stop } = await startProgram('mosquitto', args);
  const url = `mqtt://127.0.0.1:${p}`;
  await until(() => mqttUp(url), 'mosquitto to listen');
  return { url, port: p, stop };
}

export async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
