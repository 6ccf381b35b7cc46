import type { z } from 'zod';
import { didYouMean } from './text.js';

/**
 * zod's problems as `path: message` lines; `root` names the value itself when the problem is with
 * all of it. Given the schema, an unknown key is answered with the known key it most resembles (a
 * misspelt option must not pass unnoticed, nor leave the user guessing).
 */
export function describeIssues(error: z.ZodError, root = '', schema?: z.ZodType): string[] {
  // A misspelt key also leaves the key it meant missing: the misspelling is the news.
  const issues = [...error.issues].sort((a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'));
  return issues.map((i) => {
    if (i.code === 'unrecognized_keys') {
      const known = schema ? keysAt(schema, i.path) : [];
      return i.keys.map((k) => `${i.path.length ? `${i.path.join('.')}: ` : ''}unknown key "${k}"${didYouMean(k, known)}`).join('; ');
    }
    return `${i.path.join('.') || root}: ${i.message}`;
  });
}

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType };
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The keys an object schema at `path` allows (through optional, nullable, default, pipes and arrays). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  for (let i = 0; s; ) {
    const def = defOf(s);
    if (def.innerType) s = def.innerType;
    else if (def.type === 'pipe') s = def.in;
    else if (i === path.length) return def.shape ? Object.keys(def.shape) : [];
    else if (def.shape) s = def.shape[String(path[i++])];
    else if (def.element) { s = def.element; i++; }
    else return [];
  }
  return [];
}
