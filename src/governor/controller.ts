/**
 * The throttle controller: from raw and smoothed pressure to a factor, with hysteresis, bounded
 * slew, a cool-down and a warm-up. Pure: it is handed the time and returns its next state.
 *
 *   smoothed > engageAt                     engaged: cut while the current reading agrees
 *   releaseAt ≤ smoothed ≤ engageAt         hold
 *   smoothed < releaseAt                    recover, once `cooldownMs` has passed since the last cut
 *
 * Cut (multiplicative decrease), on a tick where smoothed > engageAt AND raw > engageAt AND at least
 * `cutIntervalMs` have passed since the previous cut:
 *   sustained = the lowest raw reading within the last cutIntervalMs (0 without that much history)
 *   excess = (max(smoothed, sustained) − engageAt) / (1 − engageAt)   (0 at the threshold, 1 at 1)
 *   cut = min(maxCutPerTick, maxCutPerTick · excess · Δt / intervalMs)
 *   f ← max(floor, f · (1 − cut))
 * Recover (additive increase, per second, not per tick):
 *   f ← min(1, f + recoverPerSec · Δt / 1000)
 *
 * Why both readings gate a cut: the smoothed one says the overload is not a blip (a GC pause moves
 * it by at most α); the raw one says it is still there. When the cuts have worked, the raw reading
 * falls below engageAt at once while the smoothed one lags by about τ: cutting on the smoothed one
 * alone would keep cutting through that lag and overshoot far below the level the process can bear.
 *
 * Why a minimum interval between cuts (dead time): a cut shows in the readings only once the work
 * queued before it has drained. Until then the raw reading still says "overloaded", and cutting on
 * every tick would stack cuts for an overload the first cut has already dealt with. One cut per
 * `cutIntervalMs` waits for the effect of the last one before deciding that another is needed.
 */

/**
 * - `warming`: within `warmupMs` of the start; observing, factor held at 1.
 * - `idle`: factor 1, nothing to do.
 * - `engaged`: smoothed pressure above `engageAt`; cutting while the current reading stays above too,
 *   at most once per `cutIntervalMs`.
 * - `holding`: factor below 1, either in the band between `releaseAt` and `engageAt`, or below
 *   `releaseAt` but within `cooldownMs` of the last cut.
 * - `recovering`: below `releaseAt`, cool-down over; the factor rises by `recoverPerSec`.
 * - `stopped`: the governor is not running (factor 1: a governor that does not measure does not throttle).
 */
export type GovernorState = 'warming' | 'idle' | 'engaged' | 'holding' | 'recovering' | 'stopped';

/** What the controller did on one step, for the decision record's reason. */
export type ControllerAction =
  | { readonly kind: 'warming'; readonly elapsedMs: number }
  | { readonly kind: 'cut'; readonly cut: number }
  | { readonly kind: 'dead-time'; readonly sinceCutMs: number }
  | { readonly kind: 'at-floor' }
  | { readonly kind: 'raw-below-engage' }
  | { readonly kind: 'band' }
  | { readonly kind: 'cooldown'; readonly sinceCutMs: number }
  | { readonly kind: 'recover'; readonly belowForMs: number }
  | { readonly kind: 'idle' };

export interface ControllerConfig {
  readonly intervalMs: number;
  readonly engageAt: number;
  readonly releaseAt: number;
  readonly floor: number;
  readonly maxCutPerTick: number;
  readonly cutIntervalMs: number;
  readonly recoverPerSec: number;
  readonly cooldownMs: number;
  readonly warmupMs: number;
}

export interface ControllerState {
  readonly factor: number;
  readonly state: GovernorState;
  /** When the warm-up started (the governor's start). */
  readonly startedAtMs: number;
  /** The time of the last cut, or undefined if none since the start. */
  readonly lastCutAtMs: number | undefined;
  /** Since when the smoothed pressure has been below `releaseAt`, or undefined if it is not. */
  readonly belowReleaseSinceMs: number | undefined;
  /** The raw readings of the last `cutIntervalMs` (and the one before), oldest first. */
  readonly recent: readonly { readonly atMs: number; readonly pressure: number }[];
}

export interface ControllerInput {
  readonly nowMs: number;
  /** Time since the previous step, in ms. */
  readonly dtMs: number;
  /** This tick's pressure (the dominant signal's), from 0 to 1. */
  readonly pressure: number;
  /** The smoothed pressure after folding in this tick, from 0 to 1. */
  readonly smoothedPressure: number;
}

export function initialControllerState(startedAtMs: number): ControllerState {
  return {
    factor: 1,
    state: 'warming',
    startedAtMs,
    lastCutAtMs: undefined,
    belowReleaseSinceMs: undefined,
    recent: [],
  };
}

export interface ControllerStep {
  readonly next: ControllerState;
  readonly action: ControllerAction;
}

/** One controller step. The returned factor is always within [floor, 1]. */
export function controllerStep(
  c: ControllerConfig,
  previous: ControllerState,
  input: ControllerInput,
): ControllerStep {
  const { nowMs, pressure, smoothedPressure: s } = input;
  const dtMs = Math.max(input.dtMs, 0);
  // The readings of the last cutIntervalMs, after the newest one older than that (kept first, as
  // the proof that there is a whole interval of history).
  const kept = previous.recent.filter((r) => nowMs - r.atMs < c.cutIntervalMs);
  const older = previous.recent.filter((r) => nowMs - r.atMs >= c.cutIntervalMs).at(-1);
  const recent = [...(older === undefined ? [] : [older]), ...kept, { atMs: nowMs, pressure }];
  const prev: ControllerState = { ...previous, recent };
  const elapsedMs = nowMs - prev.startedAtMs;
  if (elapsedMs < c.warmupMs) {
    return {
      next: { ...prev, factor: 1, state: 'warming', belowReleaseSinceMs: undefined },
      action: { kind: 'warming', elapsedMs },
    };
  }
  const f = prev.factor;

  if (s > c.engageAt) {
    const base = { ...prev, state: 'engaged' as const, belowReleaseSinceMs: undefined };
    if (!(pressure > c.engageAt)) return { next: base, action: { kind: 'raw-below-engage' } };
    if (f <= c.floor) return { next: { ...base, factor: c.floor }, action: { kind: 'at-floor' } };
    if (prev.lastCutAtMs !== undefined && nowMs - prev.lastCutAtMs < c.cutIntervalMs) {
      return { next: base, action: { kind: 'dead-time', sinceCutMs: nowMs - prev.lastCutAtMs } };
    }
    const excess = Math.min(
      1,
      (Math.max(s, sustained(c, prev.recent, nowMs)) - c.engageAt) / (1 - c.engageAt),
    );
    const cut = Math.min(c.maxCutPerTick, (c.maxCutPerTick * excess * dtMs) / c.intervalMs);
    const factor = Math.max(c.floor, Math.min(1, f * (1 - cut)));
    return { next: { ...base, factor, lastCutAtMs: nowMs }, action: { kind: 'cut', cut } };
  }

  if (s >= c.releaseAt) {
    return {
      next: { ...prev, state: f < 1 ? 'holding' : 'idle', belowReleaseSinceMs: undefined },
      action: f < 1 ? { kind: 'band' } : { kind: 'idle' },
    };
  }

  const belowReleaseSinceMs = prev.belowReleaseSinceMs ?? nowMs;
  if (f >= 1) {
    return { next: { ...prev, factor: 1, state: 'idle', belowReleaseSinceMs }, action: { kind: 'idle' } };
  }
  if (prev.lastCutAtMs !== undefined && nowMs - prev.lastCutAtMs < c.cooldownMs) {
    return {
      next: { ...prev, state: 'holding', belowReleaseSinceMs },
      action: { kind: 'cooldown', sinceCutMs: nowMs - prev.lastCutAtMs },
    };
  }
  const factor = Math.max(c.floor, Math.min(1, f + (c.recoverPerSec * dtMs) / 1000));
  return {
    next: { ...prev, factor, state: factor >= 1 ? 'idle' : 'recovering', belowReleaseSinceMs },
    action: { kind: 'recover', belowForMs: nowMs - belowReleaseSinceMs },
  };
}

/**
 * The lowest raw pressure read within the last `cutIntervalMs` (each reading covers the time since
 * the tick before it), or 0 without a whole interval of history. A queue that keeps every reading
 * high for a whole interval is an overload beyond doubt, though the smoothed value still lags; noise
 * around the threshold has a low reading in any interval and leaves the cut to the smoothed value.
 */
function sustained(
  c: ControllerConfig,
  recent: readonly { readonly atMs: number; readonly pressure: number }[],
  nowMs: number,
): number {
  const first = recent[0];
  if (first === undefined || nowMs - first.atMs < c.cutIntervalMs || recent.length < 2) return 0;
  let low = Number.POSITIVE_INFINITY;
  for (let i = 1; i < recent.length; i++) low = Math.min(low, recent[i]!.pressure);
  return low;
}
