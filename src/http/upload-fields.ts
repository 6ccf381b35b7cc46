import { z } from 'zod';

// Printable text without control characters: these values end up in MQTT payloads and MES records.
const text = (max: number) => z.string().trim().min(1).max(max).regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** The fields a camera sends with its image(s) (CONTRACT.md `POST /v1/inspections`). */
export const uploadFieldsSchema = z.object({
  serial: text(128),
  partNumber: text(64).optional(),
  lotId: text(128).optional(),
  workOrder: text(128).optional(),
  operation: text(64).optional(),
  operator: text(128).optional(),
  capturedAt: z.iso.datetime({ offset: true }).optional(),
});

export type UploadFields = z.infer<typeof uploadFieldsSchema>;

/** The MES's current job (retained `…/context` payload). Unknown keys are ignored. */
export const stationContextSchema = z.object({
  partNumber: text(64).nullable().optional(),
  lotId: text(128).nullable().optional(),
  workOrder: text(128).nullable().optional(),
  operation: text(64).nullable().optional(),
});

export type StationContext = z.infer<typeof stationContextSchema>;

export const idempotencyKeySchema = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
