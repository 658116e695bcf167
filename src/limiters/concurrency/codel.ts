/**
 * Standing-queue detection for adaptive LIFO and CoDel shedding, after Maurer, "Fail at Scale"
 * (ACM Queue 13(8), 2015), which adapts CoDel (Nichols & Jacobson, "Controlling Queue Delay",
 * ACM Queue 10(5), 2012; RFC 8289) from packet queues to request queues. Two states:
 *
 *   enter   the oldest waiter's sojourn time has stayed at or above the target for a whole
 *           interval (CoDel's "minimum sojourn over an interval above target"; an empty queue
 *           counts as below it): the queue does not drain, it stands;
 *   stay    while a waiter reached the target (and so was refused) less than an interval ago.
 *
 *   standing(t)  ⇔  queue not empty  ∧  ( t ≥ belowUntil + interval  ∨  t < lastAboveAt + interval )
 *
 * A queue that drains absorbs bursts (good queue); one that does not holds work that waits
 * without being served faster (bad queue). While the queue stands, every waiter whose sojourn
 * reaches the target is refused, and service is newest first: the oldest waiters' clients are the
 * ones about to give up, and the newest can still be served in time.
 *
 * Why the second clause: refusing at the target keeps every sojourn below it, and under a
 * sustained overload the queue even empties now and then (the newest are served, the rest
 * refused). Were either of these read as "the queue drains", shedding would stop for an interval
 * every time, the queue would build again, and refusals would come and go in bursts while the
 * load never changed (measured: 5–11 on/off switches per 20 s at 3× capacity). Like CoDel, which
 * stays in its dropping state while it keeps having to drop, the stage keeps standing while it
 * keeps having to refuse, and leaves only after a whole interval in which no waiter reached the
 * target: a sign the queue drains again on its own.
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
  /** The last time the queue was empty or its oldest waiter's sojourn below the target. */
  #belowUntil: number;
  /** The last time a waiter reached the target while the queue stood. */
  #lastAboveAt = -Infinity;

  constructor(targetMs: number, intervalMs: number, nowMs: number) {
    this.targetMs = targetMs;
    this.intervalMs = intervalMs;
    this.#belowUntil = nowMs;
  }

  /**
   * Call whenever the oldest waiter may have changed (an arrival, a departure): `oldestEnqueuedAt`
   * is its enqueue time, undefined when the queue is empty; `targetMs` the target in force.
   */
  oldest(nowMs: number, oldestEnqueuedAt: number | undefined, targetMs: number): void {
    // The queue is below the target now, and until its oldest waiter reaches the target (as long
    // as it stays the oldest: the next oldest arrived later and reaches it later still).
    const below = oldestEnqueuedAt === undefined ? nowMs : oldestEnqueuedAt + targetMs;
    if (below >= nowMs && below > this.#belowUntil) this.#belowUntil = below;
  }

  /** Call when a waiter reached the target while the queue stood (refused, or admitted late). */
  above(nowMs: number): void {
    if (nowMs > this.#lastAboveAt) this.#lastAboveAt = nowMs;
  }

  /** The last time the queue was empty or below the target, in clock ms (as far as known at the last call). */
  get belowUntil(): number {
    return this.#belowUntil;
  }

  /** True when a queue of `size` waiters stands at `nowMs`. */
  standing(nowMs: number, size: number): boolean {
    if (size === 0) return false;
    // The same expression as standingAt(): `now - belowUntil >= interval` can be false by one
    // rounding step at the very time standingAt() names, and a timer set for then would re-arm at
    // 0 ms forever.
    return nowMs >= this.standingAt() || nowMs < this.#lastAboveAt + this.intervalMs;
  }

  /** When a queue whose oldest waiter stays where it is becomes standing (entry). */
  standingAt(): number {
    return this.#belowUntil + this.intervalMs;
  }

  /** The sojourn target in force: `max(targetMs, 2 · holdMs / limit)`. */
  effectiveTargetMs(holdMs: number, limit: number): number {
    const gap = limit > 0 ? (2 * holdMs) / limit : 0;
    return Math.max(this.targetMs, gap);
  }
}
