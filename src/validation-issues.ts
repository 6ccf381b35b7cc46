import type { z } from 'zod';

/** zod's problems as `path: message` lines; `root` names the value itself when the problem is with all of it. */
export function describeIssues(error: z.ZodError, root = ''): string[] {
  return error.issues.map((i) => `${i.path.join('.') || root}: ${i.message}`);
}
