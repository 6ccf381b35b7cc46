import { z } from 'zod';

/** Printable text without control characters: these values end up in MQTT payloads and MES records. */
export const text = (max: number) => z.string().trim().min(1).max(max).regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** A person's free text (reasons for dispositions and plan changes): several lines allowed, still no control characters or broken UTF-16. */
export const note = (max: number) => z.string().trim().min(1).max(max).regex(/^(?:[^\p{Cc}\p{Cs}]|[\n\t])*$/u, 'must not contain control characters');

/** The MES's current job (retained `…/context` payload). Unknown keys are ignored. */
export const stationContextSchema = z.object({
  partNumber: text(64).nullable().optional(),
  lotId: text(128).nullable().optional(),
  workOrder: text(128).nullable().optional(),
  operation: text(64).nullable().optional(),
});

export type StationContext = z.infer<typeof stationContextSchema>;
