import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Database } from './database.js';

/** A model as a running process has it loaded. */
export interface LoadedModel { id: string; version: string; sha256: string }

/** How long a process's row counts as alive without a refresh (it refreshes every `refreshSeconds`). */
const refreshSeconds = 30;
export const aliveSeconds = 3 * refreshSeconds;

/**
 * Announces a running API or worker process and the models it loaded, refreshed while it runs;
 * the returned function removes it (at a clean stop; a killed process's row simply goes stale).
 */
export async function announceProcess(db: Database, role: 'api' | 'worker', models: LoadedModel[], onError: (err: Error) => void): Promise<() => Promise<void>> {
  const id = randomUUID();
  await db.query('INSERT INTO processes (process_id, role, host, pid, models) VALUES ($1, $2, $3, $4, $5)', [id, role, os.hostname(), process.pid, JSON.stringify(models)]);
  const timer = setInterval(() => {
    db.query('UPDATE processes SET seen_at = now() WHERE process_id = $1', [id]).catch(onError);
  }, refreshSeconds * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await db.query('DELETE FROM processes WHERE process_id = $1', [id]);
  };
}

/** The models loaded by each worker process seen alive, and stale rows cleared on the way. */
export async function runningWorkers(db: Database): Promise<{ host: string; pid: number; models: LoadedModel[] }[]> {
  await db.query(`DELETE FROM processes WHERE seen_at < now() - make_interval(secs => $1 * 10)`, [aliveSeconds]);
  const r = await db.query<{ host: string; pid: number; models: LoadedModel[] }>(`SELECT host, pid, models FROM processes WHERE role = 'worker' AND seen_at > now() - make_interval(secs => $1)`, [aliveSeconds]);
  return r.rows;
}
