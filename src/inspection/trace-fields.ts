import { z } from 'zod';
import { text } from '../fields.js';

/** The MES's current job (retained `…/context` payload). Unknown keys are ignored. */
export const stationContextSchema = z.object({
  partNumber: text(64).nullable().optional(),
  lotId: text(128).nullable().optional(),
  workOrder: text(128).nullable().optional(),
  operation: text(64).nullable().optional(),
});

export type StationContext = z.infer<typeof stationContextSchema>;
