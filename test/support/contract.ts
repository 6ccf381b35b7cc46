import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { repoRoot } from './visq.js';

/** The project's published documents (OpenAPI, JSON Schemas), used to check what the code really sends. */
const docs = path.join(repoRoot, 'docs');
const readJson = (f: string) => JSON.parse(readFileSync(path.join(docs, 'schemas', f), 'utf8'));

export const openapi = parse(readFileSync(path.join(docs, 'openapi.yaml'), 'utf8').replaceAll('./schemas/quality-plan.schema.json', 'https://visq.dev/schemas/quality-plan.schema.json'));

const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false, allErrors: true });
(addFormats as unknown as typeof addFormats.default)(ajv);
for (const f of ['quality-plan.schema.json', 'verdict-message.schema.json', 'station-context.schema.json', 'module-state.schema.json']) ajv.addSchema(readJson(f));
ajv.addSchema({ $id: 'openapi', components: openapi.components });

function check(validate: ReturnType<typeof ajv.compile>, value: unknown, what: string): void {
  if (!validate(value)) throw new Error(`${what} does not match its published schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 2000)}`);
}

export function assertVerdictMessage(payload: unknown): void {
  check(ajv.getSchema('https://visq.dev/schemas/verdict-message.schema.json')!, payload, 'verdict message');
}

/** Checks a response body against the OpenAPI document's schema for that path, method and status. */
export function assertApiResponse(pathTemplate: string, method: string, status: number, body: unknown): void {
  const op = openapi.paths[pathTemplate]?.[method.toLowerCase()];
  if (!op) throw new Error(`${method} ${pathTemplate} is not in docs/openapi.yaml`);
  let response = op.responses[String(status)];
  if (!response) throw new Error(`${method} ${pathTemplate} answered ${status}, which docs/openapi.yaml does not list`);
  if (response.$ref) response = openapi.components.responses[response.$ref.split('/').pop()];
  const schema = response.content?.['application/json']?.schema;
  if (!schema) return;
  const rewritten = JSON.parse(JSON.stringify(schema).replaceAll('"#/components', '"openapi#/components'));
  check(ajv.compile(rewritten), body, `${method} ${pathTemplate} ${status}`);
}
