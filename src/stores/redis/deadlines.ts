/**
 * Deadlines for calls in flight, with one timer for all of them.
 *
 * Every call gets the same timeout, so deadlines come in the order calls are sent: they wait in a
 * FIFO, and one timer is armed for the oldest unanswered call. An answer only marks its entry
 * settled (no timer to create or cancel per call, which cost more than the rest of the client-side
 * work of a decision); when the timer fires it drops the settled entries at the head, times out
 * those whose deadline has come, and re-arms for the next one. A call still waits no longer than
 * the timeout.
 */
import type { Clock, TimerHandle } from '../../clock.js';

/** One watched call. `settle` claims it for its answer: false when it has already timed out. */
export interface Watched {
  settle(): boolean;
}

/**
 * An entry stays in the FIFO until the timer passes it, up to `timeoutMs` after its call was
 * answered: settling drops the callback, so what it holds (the call's decisions and their
 * resolvers) is garbage at once instead of living on into the old generation.
 */
class Entry implements Watched {
  onTimeout: (() => void) | undefined;
  constructor(
    readonly deadline: number,
    onTimeout: () => void,
  ) {
    this.onTimeout = onTimeout;
  }

  settle(): boolean {
    if (this.onTimeout === undefined) return false;
    this.onTimeout = undefined;
    return true;
  }
}

export class Deadlines {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  /** Entries in deadline order; `#head` is the first not yet dropped. */
  #entries: Entry[] = [];
  #head = 0;
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, timeoutMs: number) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
  }

  /** Calls watched and not yet dropped (answered ones leave at the next timer). */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** Watches a call sent now: `onTimeout` runs once its deadline passes unless it settles first. */
  watch(onTimeout: () => void): Watched {
    const entry = new Entry(this.#clock.now() + this.#timeoutMs, onTimeout);
    this.#entries.push(entry);
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
    return entry;
  }

  #arm(ms: number): void {
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, ms));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = this.#clock.now();
    const entries = this.#entries;
    let i = this.#head;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      const onTimeout = e.onTimeout;
      if (onTimeout === undefined) continue;
      if (e.deadline > now) break;
      e.onTimeout = undefined;
      onTimeout();
    }
    if (i === entries.length) {
      this.#entries = [];
      this.#head = 0;
      return;
    }
    this.#head = i;
    // Compact once the dropped part is the larger half, so the array does not grow without bound.
    if (i > 1024 && i * 2 > entries.length) {
      this.#entries = entries.slice(i);
      this.#head = 0;
    }
    this.#arm(entries[i]!.deadline - now);
  };

  /** Stops the timer; watched calls are left to their answers. */
  clear(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#entries = [];
    this.#head = 0;
  }
}
