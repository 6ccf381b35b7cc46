/** Writes docs/schemas/quality-plan.schema.json from the zod schema the code validates with. */
import { writeFileSync } from 'node:fs';
import { qualityPlanJsonSchema } from '../src/quality/quality-plan-json-schema.js';

writeFileSync(new URL('../docs/schemas/quality-plan.schema.json', import.meta.url), `${JSON.stringify(qualityPlanJsonSchema(), null, 2)}\n`);
