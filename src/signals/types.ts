/** The Signal interface: one reading of the process, with where pressure starts and where it peaks. */

/**
 * What a failing signal (it threw, or returned NaN or a non-number) means for the tick:
 * - `ignore`: left out of that tick, as if it were fine (fail open). Right for readings whose
 *   failure says nothing about load, such as a CPU probe that could not spawn `ps`.
 * - `overloaded`: counted as pressure 1 for that tick (fail closed). Right for readings whose
 *   failure is itself a sign of overload, such as a pool that no longer answers.
 * Either way the failure is reported (an event and a counter), never thrown into the application.
 */
export type SignalFailureMode = 'ignore' | 'overloaded';

export interface Signal {
  /** A stable name for records, metrics and logs, such as `event-loop-delay` or `pg-waiting`. */
  readonly name: string;
  /** The unit of `value`, `target` and `limit`, for records: `ms`, `ratio`, `count`. */
  readonly unit: string;
  /** Where pressure starts (pressure 0 at or below). */
  readonly target: number;
  /** Where pressure reaches 1. Greater than `target`. */
  readonly limit: number;
  /** @default 'ignore' */
  readonly onFailure?: SignalFailureMode;
  /**
   * The reading for the interval that ends at `nowMs`. Synchronous and cheap: a signal that needs
   * asynchronous work (spawning `ps`, reading cgroup files) refreshes in the background between
   * ticks and returns its latest value here.
   */
  sample(nowMs: number): number;
  /** Starts any background sampling (called by Governor.start). Idempotent. */
  start?(): void;
  /** Stops all background sampling and timers (called by Governor.stop). Idempotent. */
  stop?(): void;
}
