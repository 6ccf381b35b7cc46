import { describe, expect, it } from 'vitest';
import { cli } from '../support/visq.js';

describe('visq demo', () => {
  it('runs a demo lot through the whole pipeline on embedded services and prints what the MES received', async () => {
    // No service URLs: embedded PostgreSQL (also the queue backend) and embedded broker.
    const r = await cli(['demo', '--images', '6'], {});
    expect(r.code, r.stderr).toBe(0);
    const counts = /Lot (DEMO-LOT-\w+) \(GET \/v1\/lots\): PASS (\d+), FAIL (\d+), REVIEW (\d+), pending (\d+)/.exec(r.stdout);
    expect(counts, r.stdout).not.toBeNull();
    const [pass, fail, review, pending] = counts!.slice(2).map(Number);
    expect(pass! + fail! + review!).toBe(6);
    expect(pending).toBe(0);
    expect(pass).toBeGreaterThan(0);
    expect(fail! + review!).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/The MES received 6 verdict messages/);
    expect(r.stdout).toMatch(/"messageId":/);
  }, 180_000);
});
