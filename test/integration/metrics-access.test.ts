import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, startVisq, testEnv, type VisqProcess } from '../support/visq.js';

/** /metrics shows production volumes and yields: with VISQ_METRICS_TOKEN set, only to whoever holds it, and never faster than it needs. */
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let cleanup: () => Promise<void>;
let visq: VisqProcess;
const token = 'metrics-token-for-prometheus-1234';

beforeAll(async () => {
  database = await createTestDatabase(inject('postgresAdminUrl'));
  const t = await testEnv({ databaseUrl: database.url, mqttUrl: inject('mqttUrl'), extra: { VISQ_METRICS_TOKEN: token } });
  cleanup = t.cleanup;
  visq = await startVisq('start', t.env);
});

afterAll(async () => {
  await visq?.stop();
  await database?.drop();
  await cleanup?.();
});

describe('/metrics', () => {
  it('asks for its token when one is set', async () => {
    expect((await fetch(`${visq.baseUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${visq.baseUrl}/metrics`, { headers: { authorization: 'Bearer wrong-token-of-the-same-size' } })).status).toBe(401);
    const ok = await fetch(`${visq.baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/visq_queue_jobs/);
    // Health and readiness stay open to load balancers.
    expect((await fetch(`${visq.baseUrl}/readyz`)).status).toBe(200);
  });

  it('is throttled: a flood of scrapes gets 429', async () => {
    await new Promise((r) => setTimeout(r, 1100));
    const statuses = await Promise.all(Array.from({ length: 15 }, () => fetch(`${visq.baseUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)));
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(10);
    expect(statuses).toContain(429);
  });
});
