/**
 * The wait queue of the concurrency limiter: waiters grouped by priority level, each level a
 * doubly linked list in arrival order. Taking serves the highest level first, and within a level
 * the oldest (FIFO) or the newest (LIFO). Removal of any waiter (abort, deadline) is O(1); the
 * CoDel sweep walks only the old end of each level. A handful of distinct levels is the normal
 * case (critical, normal, sheddable), so the level list is a small sorted array.
 */

export interface QueueNode {
  /** Priority level from 0 (shed first) to 1 (shed last). */
  readonly level: number;
  /** When it entered the queue, in clock ms. */
  readonly enqueuedAt: number;
  prev: QueueNode | undefined;
  next: QueueNode | undefined;
  /** False once removed: removing twice is harmless. */
  queued: boolean;
}

interface Level {
  readonly level: number;
  head: QueueNode | undefined; // oldest
  tail: QueueNode | undefined; // newest
  size: number;
}

export class WaitQueue<T extends QueueNode> {
  // Sorted by level, highest first.
  readonly #levels: Level[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(node: T): void {
    const lv = this.#levelFor(node.level);
    node.prev = lv.tail;
    node.next = undefined;
    if (lv.tail) lv.tail.next = node;
    else lv.head = node;
    lv.tail = node;
    lv.size++;
    node.queued = true;
    this.#size++;
  }

  remove(node: T): boolean {
    if (!node.queued) return false;
    const lv = this.#find(node.level)!;
    if (node.prev) node.prev.next = node.next;
    else lv.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else lv.tail = node.prev;
    node.prev = undefined;
    node.next = undefined;
    node.queued = false;
    lv.size--;
    this.#size--;
    if (lv.size === 0) this.#levels.splice(this.#levels.indexOf(lv), 1);
    return true;
  }

  /** The waiter that would be served next: highest level, oldest (`lifo` false) or newest. */
  peek(lifo: boolean): T | undefined {
    const lv = this.#levels[0];
    if (lv === undefined) return undefined;
    return (lifo ? lv.tail : lv.head) as T | undefined;
  }

  /** The waiter to evict for a newcomer: lowest level, oldest first. */
  peekLowest(): T | undefined {
    const lv = this.#levels[this.#levels.length - 1];
    return lv?.head as T | undefined;
  }

  /** The newest waiter of the lowest level (walk `prev` for the older ones of that level). */
  peekLowestNewest(): T | undefined {
    const lv = this.#levels[this.#levels.length - 1];
    return lv?.tail as T | undefined;
  }

  /** The enqueue time of the oldest waiter of any level, or undefined when empty. */
  oldestEnqueuedAt(): number | undefined {
    let oldest: number | undefined;
    for (const lv of this.#levels) {
      const t = lv.head!.enqueuedAt;
      if (oldest === undefined || t < oldest) oldest = t;
    }
    return oldest;
  }

  /**
   * Removes and returns, oldest of each level first, every waiter for whose enqueue time `expired`
   * holds, except those `keep` keeps.
   */
  removeExpired(expired: (enqueuedAt: number) => boolean, keep?: (node: T) => boolean): T[] {
    const out: T[] = [];
    for (const lv of [...this.#levels]) {
      let n = lv.head as T | undefined;
      while (n !== undefined && expired(n.enqueuedAt)) {
        const next = n.next as T | undefined;
        if (keep === undefined || !keep(n)) {
          this.remove(n);
          out.push(n);
        }
        n = next;
      }
    }
    return out;
  }

  /** Removes and returns every waiter. */
  drain(): T[] {
    const out: T[] = [];
    for (const lv of this.#levels) {
      for (let n = lv.head; n !== undefined; ) {
        const next = n.next;
        n.prev = undefined;
        n.next = undefined;
        n.queued = false;
        out.push(n as T);
        n = next;
      }
    }
    this.#levels.length = 0;
    this.#size = 0;
    return out;
  }

  #find(level: number): Level | undefined {
    for (const lv of this.#levels) if (lv.level === level) return lv;
    return undefined;
  }

  #levelFor(level: number): Level {
    let i = 0;
    while (i < this.#levels.length && this.#levels[i]!.level > level) i++;
    const at = this.#levels[i];
    if (at !== undefined && at.level === level) return at;
    const lv: Level = { level, head: undefined, tail: undefined, size: 0 };
    this.#levels.splice(i, 0, lv);
    return lv;
  }
}
