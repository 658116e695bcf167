/**
 * Standing-queue detection for adaptive LIFO and CoDel shedding, after Maurer, "Fail at Scale"
 * (ACM Queue 13(8), 2015), which adapts CoDel (Nichols & Jacobson, "Controlling Queue Delay",
 * ACM Queue 10(5), 2012; RFC 8289) from packet queues to request queues:
 *
 *   standing(t)  ⇔  the queue is not empty and has not been empty since t − intervalMs
 *
 * A queue that drains at least once per interval absorbs bursts (good queue); one that never
 * drains holds work that waits without being served faster (bad queue). While the queue stands,
 * every waiter whose sojourn time reaches the target is refused, and service is newest first:
 * the oldest waiters' clients are the ones about to give up, and the newest can still be served
 * in time.
 *
 * The target is never below two mean service gaps, `2 · holdMs / limit`: with 8 slots held 20 ms
 * a slot frees every 2.5 ms, and a queue shorter than that gap would leave slots idle.
 *
 * Pure: time comes in as arguments.
 */

export const CODEL_DEFAULTS = Object.freeze({ targetMs: 5, intervalMs: 100 });

export class StandingQueue {
  readonly targetMs: number;
  readonly intervalMs: number;
  #lastEmptyAt: number;

  constructor(targetMs: number, intervalMs: number, nowMs: number) {
    this.targetMs = targetMs;
    this.intervalMs = intervalMs;
    this.#lastEmptyAt = nowMs;
  }

  /** Call whenever the queue is seen empty. */
  empty(nowMs: number): void {
    this.#lastEmptyAt = nowMs;
  }

  /** When the queue was last empty, in clock ms. */
  get lastEmptyAt(): number {
    return this.#lastEmptyAt;
  }

  /** True when a queue of `size` waiters has stood for an interval at `nowMs`. */
  standing(nowMs: number, size: number): boolean {
    // The same expression as standingAt(): `now - lastEmptyAt >= interval` can be false by one
    // rounding step at the very time standingAt() names, and a timer set for then would re-arm at
    // 0 ms forever.
    return size > 0 && nowMs >= this.standingAt();
  }

  /** When a queue that stays non-empty becomes standing. */
  standingAt(): number {
    return this.#lastEmptyAt + this.intervalMs;
  }

  /** The sojourn target in force: `max(targetMs, 2 · holdMs / limit)`. */
  effectiveTargetMs(holdMs: number, limit: number): number {
    const gap = limit > 0 ? (2 * holdMs) / limit : 0;
    return Math.max(this.targetMs, gap);
  }
}
