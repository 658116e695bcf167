/**
 * Deadlines for calls in flight, with one timer for all of them.
 *
 * Every call gets the same timeout, so deadlines come in the order calls are sent: they wait in a
 * FIFO, and one timer is armed for the oldest unanswered call. An answer marks its entry settled
 * (no timer to create or cancel per call, which cost more than the rest of the client-side work of
 * a decision); the answer of the oldest call also drops it and the settled entries behind it, so
 * when answers come in order (one connection answers in order) the FIFO holds only the calls in
 * flight. When the timer fires it drops the settled entries at the head, times out those whose
 * deadline has come, and re-arms for the next one. A call still waits no longer than the timeout.
 */
import type { Clock, TimerHandle } from '../../clock.js';

/** One watched call. `settle` claims it for its answer: false when it has already timed out. */
export interface Watched {
  settle(): boolean;
}

/** The watched calls in deadline order; `head` is the first not yet dropped. */
class Fifo {
  entries: Entry[] = [];
  head = 0;

  /** Drops the settled entries at the head; an empty FIFO starts again at 0. */
  dropSettled(): void {
    const entries = this.entries;
    let i = this.head;
    while (i < entries.length && entries[i]!.onTimeout === undefined) i++;
    if (i === entries.length) {
      entries.length = 0;
      this.head = 0;
    } else if (i > 1024 && i * 2 > entries.length) {
      // Compact once the dropped part is the larger half, so the array does not grow without bound.
      this.entries = entries.slice(i);
      this.head = 0;
    } else {
      this.head = i;
    }
  }
}

/**
 * Settling drops the callback, so what it holds (the call's decisions and their resolvers) is
 * garbage at once; the oldest call's answer drops its entry too, so that entries die young instead
 * of living on, one per call, into the old generation until the timer passes them (garbage
 * collection was the larger part of the store's own client-side cost at concurrency 1).
 */
class Entry implements Watched {
  onTimeout: (() => void) | undefined;
  constructor(
    readonly deadline: number,
    onTimeout: () => void,
    readonly fifo: Fifo,
  ) {
    this.onTimeout = onTimeout;
  }

  settle(): boolean {
    if (this.onTimeout === undefined) return false;
    this.onTimeout = undefined;
    const fifo = this.fifo;
    if (fifo.entries[fifo.head] === this) fifo.dropSettled();
    return true;
  }
}

export class Deadlines {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #fifo = new Fifo();
  #timer: TimerHandle | undefined;

  constructor(clock: Clock, timeoutMs: number) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
  }

  /** Calls watched and not yet dropped (answered ones behind an unanswered one leave later). */
  get size(): number {
    return this.#fifo.entries.length - this.#fifo.head;
  }

  /** Watches a call sent now: `onTimeout` runs once its deadline passes unless it settles first. */
  watch(onTimeout: () => void): Watched {
    const fifo = this.#fifo;
    const entry = new Entry(this.#clock.now() + this.#timeoutMs, onTimeout, fifo);
    fifo.entries.push(entry);
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
    return entry;
  }

  #arm(ms: number): void {
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, ms));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = this.#clock.now();
    const fifo = this.#fifo;
    const entries = fifo.entries;
    let i = fifo.head;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      const onTimeout = e.onTimeout;
      if (onTimeout === undefined) continue;
      if (e.deadline > now) break;
      e.onTimeout = undefined;
      onTimeout();
    }
    fifo.head = i;
    fifo.dropSettled();
    if (fifo.head < fifo.entries.length) this.#arm(fifo.entries[fifo.head]!.deadline - now);
  };

  /** Stops the timer; watched calls are left to their answers. */
  clear(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#fifo.entries = [];
    this.#fifo.head = 0;
  }
}
