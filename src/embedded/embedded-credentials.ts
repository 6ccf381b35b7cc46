import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

/**
 * Passwords of the embedded PostgreSQL and broker, made once per data folder and kept in it (mode
 * 600): another visq on the same box cannot guess them, and the admin commands and an MES client
 * on the embedded broker find them here.
 */
const schema = z.object({ postgresPassword: z.string().min(20), mqttUsername: z.string().min(1), mqttPassword: z.string().min(20) });
export type EmbeddedCredentials = z.infer<typeof schema>;

export const credentialsFile = (dataDir: string) => path.join(dataDir, 'embedded-credentials.json');

/** The data folder's credentials, made (atomically, so two starts agree) when there are none. */
export async function embeddedCredentials(dataDir: string): Promise<EmbeddedCredentials> {
  const file = credentialsFile(dataDir);
  const existing = await readCredentials(dataDir);
  if (existing) return existing;
  await mkdir(dataDir, { recursive: true });
  const made: EmbeddedCredentials = {
    postgresPassword: randomBytes(24).toString('base64url'),
    mqttUsername: 'visq',
    mqttPassword: randomBytes(24).toString('base64url'),
  };
  // 'wx': when another process made them a moment ago, theirs count.
  await writeFile(file, `${JSON.stringify(made, null, 2)}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  });
  return (await readCredentials(dataDir))!;
}

/** The data folder's credentials, or null when none were made yet. */
export async function readCredentials(dataDir: string): Promise<EmbeddedCredentials | null> {
  let text: string;
  try {
    text = await readFile(credentialsFile(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = schema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${credentialsFile(dataDir)} is damaged; move it away and restart (new passwords are made)`);
  return parsed.data;
}
