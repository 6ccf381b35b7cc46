/**
 * Group commit: writes that arrive while a commit is under way wait for the next one, which takes
 * them together in one transaction — one WAL flush, and one hold of the outbox's order lock, which
 * otherwise makes every verdict wait for the commit of the one before it. With nothing under way a
 * write commits at once, so light load waits for nothing.
 *
 * When a group fails, each of its writes is tried alone, so that a write that cannot commit fails
 * by itself and takes no other with it.
 */
export class GroupCommit<Item, Result> {
  private readonly waiting: { item: Item; resolve: (r: Result) => void; reject: (e: unknown) => void }[] = [];
  private committing = false;

  constructor(
    /** Commits the items in one transaction, answering one result per item in order. */
    private readonly commitAll: (items: Item[]) => Promise<Result[]>,
    private readonly maxItems = 64,
    /** Told the size of every group that committed. */
    private readonly committed: (items: number) => void = () => {},
  ) {}

  submit(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      void this.next();
    });
  }

  private async next(): Promise<void> {
    if (this.committing || this.waiting.length === 0) return;
    this.committing = true;
    const group = this.waiting.splice(0, this.maxItems);
    try {
      const results = await this.commitAll(group.map((w) => w.item));
      this.committed(group.length);
      group.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      if (group.length === 1) group[0]!.reject(err);
      else {
        await Promise.all(group.map(async (w) => {
          try {
            const [result] = await this.commitAll([w.item]);
            this.committed(1);
            w.resolve(result!);
          } catch (one) {
            w.reject(one);
          }
        }));
      }
    } finally {
      this.committing = false;
      void this.next();
    }
  }
}
