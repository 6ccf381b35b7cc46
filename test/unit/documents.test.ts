import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { qualityPlanJsonSchema } from '../../src/quality/quality-plan-json-schema.js';
import { openapi } from '../support/contract.js';
import { repoRoot } from '../support/visq.js';

describe('the published documents', () => {
  it('docs/schemas/quality-plan.schema.json is generated from the schema the code validates with (npm run schemas)', () => {
    const committed = JSON.parse(readFileSync(`${repoRoot}/docs/schemas/quality-plan.schema.json`, 'utf8'));
    expect(committed).toEqual(qualityPlanJsonSchema());
  });

  it('the OpenAPI document lists every route the API serves, and no other', () => {
    const sources = readdirSync(`${repoRoot}/src/http`).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(`${repoRoot}/src/http/${f}`, 'utf8')).join('\n');
    const served = [...sources.matchAll(/(?:router|app)\.(get|post|put|delete|patch)\('([^']+)'/g)]
      .map(([, method, p]) => `${method} ${p!.startsWith('/healthz') || p!.startsWith('/readyz') || p!.startsWith('/metrics') ? p : `/v1${p}`}`.replace(/:(\w+)/g, '{$1}'))
      .sort();
    const documented = Object.entries(openapi.paths as Record<string, Record<string, unknown>>)
      .flatMap(([p, ops]) => Object.keys(ops).filter((m) => ['get', 'post', 'put', 'delete', 'patch'].includes(m)).map((m) => `${m} ${p}`))
      .sort();
    expect(served).toEqual(documented);
  });
});
