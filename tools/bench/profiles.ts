/**
 * Where a process's CPU went, from the V8 CPU profiles `node --cpu-prof` writes (one file per thread):
 * self time summed by what the code belongs to (a package under node_modules, a folder of visq's
 * dist/, Node's internals, the garbage collector, native code), so a finding names measured time.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; hitCount?: number }
interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

function partOf(frame: ProfileNode['callFrame']): string | null {
  const { url, functionName } = frame;
  if (functionName === '(idle)') return null;
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (functionName === '(program)' || (!url && functionName.startsWith('('))) return 'V8 / native (program)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/dist\/([^/]+)\//.exec(url);
  if (own) return `visq ${own[1]}`;
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/')[0]}`;
  return functionName ? `native: ${functionName}` : 'other';
}

/** The top parts of each profile in `dir`, as lines to print. */
export async function summarizeProfiles(dir: string, top = 12): Promise<string> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.cpuprofile')).sort();
  const lines: string[] = [];
  for (const file of files) {
    const profile = JSON.parse(await readFile(path.join(dir, file), 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const ms = new Map<string, number>();
    // Each sample's time is the delta that follows it.
    profile.samples.forEach((id, i) => {
      const part = partOf(byId.get(id)!.callFrame);
      if (part) ms.set(part, (ms.get(part) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / 1000);
    });
    const busy = [...ms.values()].reduce((a, b) => a + b, 0);
    if (busy < 50) continue; // threads that did next to nothing
    lines.push(`  ${file}: ${Math.round(busy)} ms busy`);
    for (const [part, t] of [...ms].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      lines.push(`    ${(100 * t / busy).toFixed(1).padStart(5)} %  ${part}`);
    }
  }
  return lines.length ? `CPU profiles (${dir}):\n${lines.join('\n')}` : `no CPU profiles in ${dir}`;
}
