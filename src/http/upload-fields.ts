import { z } from 'zod';
import { text } from '../fields.js';

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

export const idempotencyKeySchema = z.string().min(1).max(200).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
