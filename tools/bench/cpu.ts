/**
 * CPU time per process and thread from /proc (Linux), for the benchmark's breakdown: every process
 * below the bench's own (visq, the peer, the embedded PostgreSQL, a Redis or Mosquitto the bench
 * started) is put in a part by what it is; visq's threads by their names (the inference threads
 * name themselves `visq-inference`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const ticksPerSecond = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100; } catch { return 100; }
})();

interface Stat { pid: number; comm: string; ppid: number; cpuMs: number }

function readStat(file: string): Stat | null {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { return null; }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  // Fields after the name: state(3) ppid(4) … utime(14) stime(15), counted from 1 over the whole line.
  return { pid: Number(text.slice(0, open)), comm: text.slice(open + 1, close), ppid: Number(rest[1]), cpuMs: ((Number(rest[11]) + Number(rest[12])) / ticksPerSecond) * 1000 };
}

const pids = () => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);

/** A process's descendants (itself excluded). */
function descendants(root: number): Stat[] {
  const all = pids().map((p) => readStat(`/proc/${p}/stat`)).filter((s): s is Stat => s !== null);
  const children = new Map<number, Stat[]>();
  for (const s of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const out: Stat[] = [];
  const walk = (p: number) => { for (const c of children.get(p) ?? []) { out.push(c); walk(c.pid); } };
  walk(root);
  return out;
}

/** CPU milliseconds so far of each part: named node processes split by thread, services by their program. */
export function cpuByPart(nodeProcesses: Record<string, number>): Map<string, number> {
  const parts = new Map<string, number>();
  const add = (part: string, ms: number) => parts.set(part, (parts.get(part) ?? 0) + ms);
  const named = new Map(Object.entries(nodeProcesses).map(([name, pid]) => [pid, name]));
  for (const s of descendants(process.pid)) {
    const name = named.get(s.pid);
    if (name) {
      for (const tid of readdirSync(`/proc/${s.pid}/task`).map(Number)) {
        const t = readStat(`/proc/${s.pid}/task/${tid}/stat`);
        if (!t) continue;
        const thread = tid === s.pid ? 'main thread' : t.comm === 'visq-inference' ? 'inference threads' : 'other threads';
        add(`${name}: ${thread}`, t.cpuMs);
      }
    } else if (s.comm === 'postgres') add('PostgreSQL', s.cpuMs);
    else if (s.comm === 'redis-server') add('Redis', s.cpuMs);
    else if (s.comm === 'mosquitto') add('broker (Mosquitto)', s.cpuMs);
    // tsx's launcher and the like: not part of what is measured.
  }
  const self = process.cpuUsage();
  add('bench client', (self.user + self.system) / 1000);
  return parts;
}

/** What each part spent between two readings. */
export function cpuSpent(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([part, ms]) => [part, ms - (before.get(part) ?? 0)]));
}
