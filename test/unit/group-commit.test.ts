import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/db/group-commit.js';

/** A commit that the test finishes by hand, recording the groups it was given. */
function manualCommits() {
  const groups: number[][] = [];
  const pending: (() => void)[] = [];
  const commitAll = (items: number[]) => new Promise<string[]>((resolve, reject) => {
    groups.push(items);
    pending.push(() => (items.includes(13) ? reject(new Error('13 cannot commit')) : resolve(items.map((i) => `r${i}`))));
  });
  const finishNext = async () => { pending.shift()!(); await new Promise((r) => setImmediate(r)); };
  return { groups, pending, commitAll, finishNext };
}

describe('group commit', () => {
  it('commits a lone write at once, and gathers the writes that arrive meanwhile into the next commit', async () => {
    const c = manualCommits();
    const g = new GroupCommit(c.commitAll);
    const first = g.submit(1);
    expect(c.groups).toEqual([[1]]);
    const later = [g.submit(2), g.submit(3), g.submit(4)];
    expect(c.groups).toEqual([[1]]);
    await c.finishNext();
    expect(await first).toBe('r1');
    expect(c.groups).toEqual([[1], [2, 3, 4]]);
    await c.finishNext();
    expect(await Promise.all(later)).toEqual(['r2', 'r3', 'r4']);
  });

  it('takes at most maxItems per commit', async () => {
    const c = manualCommits();
    const sizes: number[] = [];
    const g = new GroupCommit(c.commitAll, 2, (n) => sizes.push(n));
    const all = [1, 2, 3, 4, 5].map((i) => g.submit(i));
    while (c.pending.length) await c.finishNext();
    expect(c.groups).toEqual([[1], [2, 3], [4, 5]]);
    expect(sizes).toEqual([1, 2, 2]);
    expect(await Promise.all(all)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('a write that cannot commit fails alone: its group is tried again one write at a time', async () => {
    const c = manualCommits();
    const g = new GroupCommit(c.commitAll);
    const first = g.submit(1);
    const group = [12, 13, 14].map((i) => g.submit(i).then((r) => r, (e: Error) => e.message));
    await c.finishNext();
    await first;
    await c.finishNext(); // the group [12, 13, 14] fails
    expect(c.groups.slice(2)).toEqual([[12], [13], [14]]);
    while (c.pending.length) await c.finishNext();
    expect(await Promise.all(group)).toEqual(['r12', '13 cannot commit', 'r14']);
  });
});
