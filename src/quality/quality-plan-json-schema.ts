import { z } from 'zod';
import { qualityPlanSchema } from './quality-plan.js';

/** The quality plan as JSON Schema, for editors and integrators; generated from the schema the code uses. */
export function qualityPlanJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(qualityPlanSchema, { io: 'input', target: 'draft-2020-12' }),
    $id: 'https://visq.dev/schemas/quality-plan.schema.json',
    title: 'visq quality plan',
    description:
      'A versioned list of characteristics with spec limits for a part number (and optionally an operation). ' +
      'Per characteristic: outside [lsl, usl] → fail; inside but at most guardBand from a limit → review; otherwise pass. ' +
      'A missing limit is unbounded on that side. Also checked when stored (not expressible here): at least one limit, lsl ≤ usl, ' +
      'guard bands not covering the whole tolerance, unique names, and model/measure present in the model registry.',
  };
}
