/**
 * From a signal's reading to its pressure, and from many pressures to the one that dominates.
 * Pure: no clock, no I/O.
 */

/**
 * The largest pressure a single reading can contribute. A reading beyond its signal's `limit`
 * counts as exactly `limit`: a 10 s event-loop stall (a debugger, a suspended VM, a long GC) says
 * "overloaded" no more loudly than a reading at the limit. Capping bounds how far one outlier can
 * move the smoothed pressure (by at most α, see smoothing.ts), so how long the governor takes to
 * forget it never depends on how wild it was.
 */
export const MAX_PRESSURE = 1;

/**
 * The pressure of one reading: `(value − target) / (limit − target)`, clamped to
 * `[0, MAX_PRESSURE]`. 0 at or below the target, 1 at or beyond the limit. `limit > target`.
 */
export function signalPressure(value: number, target: number, limit: number): number {
  const p = (value - target) / (limit - target);
  if (!(p > 0)) return 0; // also NaN → 0; callers reject non-finite readings before this
  return Math.min(p, MAX_PRESSURE);
}

/** One signal's contribution to a tick. */
export interface PressureReading {
  readonly name: string;
  readonly unit: string;
  /** The reading, in `unit`. NaN when the signal failed and counts as overloaded. */
  readonly value: number;
  readonly target: number;
  readonly limit: number;
  /** From 0 to 1. */
  readonly pressure: number;
}

/**
 * The reading with the highest pressure (the first of equals, so the order of the signals breaks
 * ties), or undefined when there is none. The governor's pressure is this reading's pressure: the
 * process is as overloaded as its most overloaded resource.
 */
export function dominantReading<R extends PressureReading>(readings: readonly R[]): R | undefined {
  let best: R | undefined;
  for (const r of readings) if (best === undefined || r.pressure > best.pressure) best = r;
  return best;
}
