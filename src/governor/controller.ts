/**
 * The throttle controller: from raw and smoothed pressure to a factor, with hysteresis, cuts sized
 * by the excess and paced by a measured dead time, a cool-down, fast recovery once pressure is
 * clear, and a warm-up that strong evidence can end. Pure: it is handed the time and returns its
 * next state.
 *
 *   smoothed > engageAt                     engaged: cut while the current reading agrees, paced
 *                                           by the dead time (below)
 *   releaseAt ≤ smoothed ≤ engageAt         hold
 *   smoothed < releaseAt                    recover (additive), once `cooldownMs` has passed since the last cut
 *   current pressure 0 for `clearMs`        recover fast (multiplicative toward 1), whatever the smoothed value
 *
 * Cut size (multiplicative decrease), on a tick where smoothed > engageAt AND raw > engageAt:
 *   sustained = the lowest raw reading within the last cutIntervalMs (0 without that much history)
 *   excess = (max(smoothed, sustained) − engageAt) / (1 − engageAt)   (0 at the threshold, 1 at 1)
 *   cut = min(maxCutPerTick, maxCutPerTick · excess · Δt / intervalMs)
 *   f ← max(floor, f · (1 − cut))
 *
 * When to cut again (dead time). A cut shows in the readings only once the work queued before it
 * has drained: until then the reading still says "overloaded", and a controller that cuts on a
 * fixed clock stacks cuts for an overload the first one dealt with, down to the floor. So after a
 * cut the controller watches the *level*, the dominant reading's unclamped pressure `(value −
 * target) / (limit − target)` (a queue 30 times its limit reads 30, not 1, so that its draining is
 * visible), and cuts again only when, at least `cutIntervalMs` after the last cut:
 *   - the level rose above its value at the last cut by RISE_MARGIN (the cut was not enough), or
 *   - the level has made no progress (a new low, by PROGRESS_MARGIN) for the dead time D.
 * D is measured: the time from a cut to the first progress, bounded to [cutIntervalMs,
 * maxDeadTimeMs]; before any measurement it is cutIntervalMs. While the level keeps falling the
 * cut is working and the controller holds, however high the level still is.
 *
 * Recovery. Additive (recoverPerSec) while the smoothed pressure is below releaseAt and the
 * cool-down is over; fast once the current pressure has been 0 (every signal at or below its
 * target) for `clearMs` and the cool-down is over: the gap to 1 halves every `recoverHalfLifeMs`,
 * and closes when below 1%. A load that fell away is then served again within a second or two,
 * where additive recovery from the floor took 19 s.
 *
 * Step back after an overshoot. A cut is sized before its effect shows, so the last one may go
 * past the edge: the pressure then clears at once. The controller keeps a bracket: the *ceiling*,
 * the factor before the last cut (a level seen overloaded; none when the cut reached the floor),
 * and `lowBound`, a level seen clear. While a ceiling under 1 is known, recovery is a bisection
 * instead of a jump (m = CEILING_MARGIN):
 *   clear for clearMs at f < ceiling·(1 − m)   step back: lowBound ← f,
 *                                             f ← min(ceiling·(1 − m), f + (ceiling − f)/2)
 *                                             (each step waits clearMs clear at its own level)
 *   clear for clearMs at f ≥ ceiling·(1 − m)   probe: lowBound ← ceiling·(1 − m), f rises by
 *                                             recoverPerSec
 *   clear for 2·clearMs at f ≥ ceiling         the ceiling is forgotten: fast recovery to 1
 * A cut from f that would go below `lowBound` lands on it (used once). If the pressure stays, the
 * level seen clear was over the edge after all (the reading lags; the edge may have moved): after
 * twice the dead time the next cut is 2·m, then 4·m, 8·m… each after twice the dead time
 * (galloping down from it), until a full cut would be smaller. Additive recovery after a step back
 * stops at ceiling·(1 − m). So a cut that overshot is given back half
 * at a time, each half kept only if the pressure stays clear, and the factor settles a few % under
 * the level that overloads; the bracket is forgotten when the factor is back at 1.
 *
 * Warm-up. For warmupMs the controller only observes, unless the level has stayed at or above
 * WARMUP_EVIDENCE_LEVEL (2: twice as far past the target as the limit is) for `warmupEvidenceMs`:
 * start-up noise is short, a process started into an overload is not.
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
  | { readonly kind: 'warmup-ended'; readonly evidenceMs: number }
  | { readonly kind: 'cut'; readonly cut: number; readonly why: 'first' | 'rising' | 'stalled' }
  | { readonly kind: 'dead-time'; readonly sinceCutMs: number; readonly deadTimeMs: number }
  | { readonly kind: 'draining'; readonly level: number }
  | { readonly kind: 'at-floor' }
  | { readonly kind: 'raw-below-engage' }
  | { readonly kind: 'band' }
  | { readonly kind: 'cooldown'; readonly sinceCutMs: number }
  | { readonly kind: 'recover'; readonly belowForMs: number }
  | { readonly kind: 'recover-fast'; readonly clearForMs: number }
  | { readonly kind: 'step-back'; readonly from: number; readonly ceiling: number }
  | { readonly kind: 'step-wait'; readonly clearForMs: number; readonly ceiling: number }
  | { readonly kind: 'probe'; readonly ceiling: number }
  | { readonly kind: 'idle' };

export interface ControllerConfig {
  readonly intervalMs: number;
  readonly engageAt: number;
  readonly releaseAt: number;
  readonly floor: number;
  readonly maxCutPerTick: number;
  readonly cutIntervalMs: number;
  readonly maxDeadTimeMs: number;
  readonly recoverPerSec: number;
  readonly clearMs: number;
  readonly recoverHalfLifeMs: number;
  readonly cooldownMs: number;
  readonly warmupMs: number;
  readonly warmupEvidenceMs: number;
}

/** A level this far above its value at the last cut means the cut was not enough. In pressure units. */
export const RISE_MARGIN = 0.1;
/** Progress is a new low of the level by max(this, 5% of the level). In pressure units. */
export const PROGRESS_MARGIN = 0.05;
/** During warm-up, a level at or above this for `warmupEvidenceMs` ends the warm-up early. */
export const WARMUP_EVIDENCE_LEVEL = 2;
/**
 * Stepping back stops this share under the factor that last overloaded (the ceiling): pressure
 * clear because the factor holds the load off is not the load gone, and a jump back past the
 * ceiling re-creates the overload (a cycle of cut, clear, jump). Above it, only a probe at
 * `recoverPerSec` (see "Step back").
 */
export const CEILING_MARGIN = 0.02;
/** Fast recovery closes the gap to 1 once it is below this. */
const RECOVERED_GAP = 0.01;

export interface ControllerState {
  readonly factor: number;
  readonly state: GovernorState;
  /** When the warm-up started (the governor's start). */
  readonly startedAtMs: number;
  /** Whether strong evidence ended the warm-up early. */
  readonly warmupEnded: boolean;
  /** Since when the level has stayed at or above WARMUP_EVIDENCE_LEVEL during warm-up, or undefined. */
  readonly evidenceSinceMs: number | undefined;
  /** The time of the last cut, or undefined if none since the start. */
  readonly lastCutAtMs: number | undefined;
  /** The level at the last cut. */
  readonly cutLevel: number;
  /** The lowest level since the last cut (the reference for progress). */
  readonly lowLevel: number;
  /** When the level last made progress (or the last cut, if it has not since). */
  readonly progressAtMs: number;
  /** Whether the level has made progress since the last cut (the dead time was measured). */
  readonly responded: boolean;
  /** The dead time estimate, in ms, within [cutIntervalMs, maxDeadTimeMs]. */
  readonly deadTimeMs: number;
  /** Since when the smoothed pressure has been below `releaseAt`, or undefined if it is not. */
  readonly belowReleaseSinceMs: number | undefined;
  /** Since when the current pressure has been 0, or undefined if it is not. */
  readonly clearSinceMs: number | undefined;
  /** The raw readings of the last `cutIntervalMs` (and the one before), oldest first. */
  readonly recent: readonly { readonly atMs: number; readonly pressure: number }[];
  /**
   * The factor in force before the last cut: a level seen overloaded. Recovery steps back toward
   * it by halves and stops CEILING_MARGIN under it (see "Step back"). 1 when there is none
   * (forgotten after cooldownMs of clear pressure within CEILING_MARGIN of it, or at factor 1).
   */
  readonly ceiling: number;
  /** A factor seen clear for clearMs (the level of the last step back): bounds the next cut. 0: none. */
  readonly lowBound: number;
  /** The time of the last step back, or undefined since the last cut. */
  readonly steppedAtMs: number | undefined;
  /** Since when the factor has been at or above the ceiling (probing) with the pressure clear. */
  readonly aboveCeilingSinceMs: number | undefined;
  /**
   * After a cut that landed on `lowBound` (a level seen clear): CEILING_MARGIN; after a cut that
   * galloped down from it: that cut's relative size; 0 otherwise. While it is not 0 the next cut
   * waits twice the dead time (a reading still rising is the signal's lag, not the cut falling
   * short), and if the pressure stays, the level seen clear was not: the edge is just under it, and
   * the next cut is twice this size (at most a full one) instead of a full one.
   */
  readonly gallop: number;
}

export interface ControllerInput {
  readonly nowMs: number;
  /** Time since the previous step, in ms. */
  readonly dtMs: number;
  /** This tick's pressure (the dominant signal's), from 0 to 1. */
  readonly pressure: number;
  /** The smoothed pressure after folding in this tick, from 0 to 1. */
  readonly smoothedPressure: number;
  /**
   * The highest unclamped pressure this tick, `(value − target) / (limit − target)`: above 1 when a
   * reading is past its limit. @default pressure
   */
  readonly level?: number;
}

export function initialControllerState(startedAtMs: number, deadTimeMs = 1000): ControllerState {
  return {
    factor: 1,
    state: 'warming',
    startedAtMs,
    warmupEnded: false,
    evidenceSinceMs: undefined,
    lastCutAtMs: undefined,
    cutLevel: 0,
    lowLevel: 0,
    progressAtMs: startedAtMs,
    responded: true,
    deadTimeMs,
    belowReleaseSinceMs: undefined,
    clearSinceMs: undefined,
    recent: [],
    ceiling: 1,
    lowBound: 0,
    steppedAtMs: undefined,
    aboveCeilingSinceMs: undefined,
    gallop: 0,
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
  const level = Math.max(pressure, Number.isFinite(input.level) ? (input.level as number) : pressure);
  const dtMs = Math.max(input.dtMs, 0);
  // The readings of the last cutIntervalMs, after the newest one older than that (kept first, as
  // the proof that there is a whole interval of history).
  const kept = previous.recent.filter((r) => nowMs - r.atMs < c.cutIntervalMs);
  const older = previous.recent.filter((r) => nowMs - r.atMs >= c.cutIntervalMs).at(-1);
  const recent = [...(older === undefined ? [] : [older]), ...kept, { atMs: nowMs, pressure }];
  let prev: ControllerState = {
    ...previous,
    recent,
    clearSinceMs: pressure > 0 ? undefined : (previous.clearSinceMs ?? nowMs),
  };
  prev = trackLevel(c, prev, nowMs, level);

  const elapsedMs = nowMs - prev.startedAtMs;
  let warmupEnded: ControllerAction | undefined;
  if (elapsedMs < c.warmupMs && !prev.warmupEnded) {
    const evidenceSinceMs = level >= WARMUP_EVIDENCE_LEVEL ? (prev.evidenceSinceMs ?? nowMs) : undefined;
    if (evidenceSinceMs === undefined || nowMs - evidenceSinceMs < c.warmupEvidenceMs) {
      return {
        next: { ...prev, factor: 1, state: 'warming', belowReleaseSinceMs: undefined, evidenceSinceMs },
        action: { kind: 'warming', elapsedMs },
      };
    }
    prev = { ...prev, warmupEnded: true, evidenceSinceMs };
    warmupEnded = { kind: 'warmup-ended', evidenceMs: nowMs - evidenceSinceMs };
  }
  const step = settledStep(c, prev, nowMs, dtMs, pressure, s, level);
  // The record of the tick that ended the warm-up says so, unless that tick also cut.
  return warmupEnded !== undefined && step.action.kind !== 'cut' ? { ...step, action: warmupEnded } : step;
}

/** Progress of the level since the last cut, and the dead time it measures. */
function trackLevel(c: ControllerConfig, st: ControllerState, nowMs: number, level: number): ControllerState {
  if (st.lastCutAtMs === undefined) return st;
  if (level >= st.lowLevel - Math.max(PROGRESS_MARGIN, Math.abs(st.lowLevel) * 0.05)) return st;
  const measured = nowMs - st.lastCutAtMs;
  return {
    ...st,
    lowLevel: level,
    progressAtMs: nowMs,
    responded: true,
    deadTimeMs: st.responded ? st.deadTimeMs : bound(c, measured),
  };
}

function bound(c: ControllerConfig, deadTimeMs: number): number {
  return Math.min(c.maxDeadTimeMs, Math.max(c.cutIntervalMs, deadTimeMs));
}

/** The step once warm-up is over. */
function settledStep(
  c: ControllerConfig,
  prev: ControllerState,
  nowMs: number,
  dtMs: number,
  pressure: number,
  s: number,
  level: number,
): ControllerStep {
  const sinceCut = prev.lastCutAtMs === undefined ? Infinity : nowMs - prev.lastCutAtMs;
  const cooled = sinceCut >= c.cooldownMs;
  // Fast recovery first: the smoothed value lags the load's fall by seconds, and a load the process
  // can serve must not wait for it.
  const fast = cooled ? fastRecovery(c, prev, nowMs, dtMs, s) : undefined;
  if (fast !== undefined) return fast;
  if (s > c.engageAt) return engagedStep(c, prev, nowMs, dtMs, pressure, s, level, sinceCut);
  if (s >= c.releaseAt) {
    const f = prev.factor;
    return {
      next: { ...prev, state: f < 1 ? 'holding' : 'idle', belowReleaseSinceMs: undefined },
      action: f < 1 ? { kind: 'band' } : { kind: 'idle' },
    };
  }
  return belowReleaseStep(c, prev, nowMs, dtMs, cooled, sinceCut);
}

/**
 * The current pressure has been 0 for clearMs (and the cool-down is over): step back toward the
 * last ceiling, or raise the factor fast (multiplicative toward 1). Undefined when not clear.
 */
function fastRecovery(
  c: ControllerConfig,
  prev: ControllerState,
  nowMs: number,
  dtMs: number,
  s: number,
): ControllerStep | undefined {
  const f = prev.factor;
  if (!(f < 1 && prev.clearSinceMs !== undefined && nowMs - prev.clearSinceMs >= c.clearMs)) return undefined;
  if (prev.ceiling < 1) {
    const stepped = stepBack(c, prev, nowMs, dtMs, s);
    if (stepped !== undefined) return stepped;
  }
  const additive = f + (c.recoverPerSec * dtMs) / 1000;
  const fast = 1 - (1 - f) * 2 ** (-dtMs / c.recoverHalfLifeMs);
  const raised = Math.min(1, Math.max(fast, additive));
  const factor = 1 - raised < RECOVERED_GAP ? 1 : Math.max(c.floor, raised);
  return {
    next: {
      ...(factor >= 1 ? forgetBracket(prev) : prev),
      ceiling: 1,
      aboveCeilingSinceMs: undefined,
      factor,
      state: factor >= 1 ? 'idle' : 'recovering',
      belowReleaseSinceMs: s < c.releaseAt ? (prev.belowReleaseSinceMs ?? nowMs) : undefined,
    },
    action: { kind: 'recover-fast', clearForMs: nowMs - prev.clearSinceMs },
  };
}

/** Smoothed pressure above engageAt: cut (sized by the excess, paced by the dead time) or wait. */
function engagedStep(
  c: ControllerConfig,
  prev: ControllerState,
  nowMs: number,
  dtMs: number,
  pressure: number,
  s: number,
  level: number,
  sinceCut: number,
): ControllerStep {
  const f = prev.factor;
  const base = { ...prev, state: 'engaged' as const, belowReleaseSinceMs: undefined };
  if (!(pressure > c.engageAt)) return { next: base, action: { kind: 'raw-below-engage' } };
  if (f <= c.floor) return { next: { ...base, factor: c.floor }, action: { kind: 'at-floor' } };
  const why = cutReason(c, prev, nowMs, level);
  if (why === undefined) {
    if (sinceCut < prev.deadTimeMs && !prev.responded) {
      return {
        next: base,
        action: { kind: 'dead-time', sinceCutMs: sinceCut, deadTimeMs: prev.deadTimeMs },
      };
    }
    return { next: base, action: { kind: 'draining', level } };
  }
  const excess = Math.min(1, (Math.max(s, sustained(c, prev.recent, nowMs)) - c.engageAt) / (1 - c.engageAt));
  const full = Math.min(c.maxCutPerTick, (c.maxCutPerTick * excess * dtMs) / c.intervalMs);
  // A level seen clear bounds the cut, once (see "Step back").
  const bounded = prev.lowBound > 0 && prev.lowBound < f && f * (1 - full) < prev.lowBound;
  // Right after a bounded cut, the edge is just under the level it landed on: search down from it
  // by doubling steps (galloping) rather than one full cut.
  const galloping = !bounded && prev.gallop > 0 && 2 * prev.gallop < full;
  const cut = bounded ? 1 - prev.lowBound / f : galloping ? 2 * prev.gallop : full;
  const factor = Math.max(c.floor, Math.min(1, bounded ? prev.lowBound : f * (1 - cut)));
  return {
    next: {
      ...base,
      // A cut that reached the floor ran out of room rather than found the edge: no ceiling.
      ceiling: factor > c.floor ? f : 1,
      lowBound: bounded ? 0 : prev.lowBound,
      steppedAtMs: undefined,
      aboveCeilingSinceMs: undefined,
      gallop: bounded ? CEILING_MARGIN : galloping ? cut : 0,
      factor,
      lastCutAtMs: nowMs,
      cutLevel: level,
      lowLevel: level,
      progressAtMs: nowMs,
      responded: false,
    },
    action: { kind: 'cut', cut, why },
  };
}

/** Smoothed pressure below releaseAt: hold through the cool-down, then recover additively. */
function belowReleaseStep(
  c: ControllerConfig,
  prev: ControllerState,
  nowMs: number,
  dtMs: number,
  cooled: boolean,
  sinceCut: number,
): ControllerStep {
  const f = prev.factor;
  const belowReleaseSinceMs = prev.belowReleaseSinceMs ?? nowMs;
  if (f >= 1) {
    return { next: { ...prev, factor: 1, state: 'idle', belowReleaseSinceMs }, action: { kind: 'idle' } };
  }
  if (!cooled) {
    return {
      next: { ...prev, state: 'holding', belowReleaseSinceMs },
      action: { kind: 'cooldown', sinceCutMs: sinceCut },
    };
  }
  // While stepping back (bisecting toward a ceiling), the pressure that is not quite clear holds
  // the factor under the ceiling's top: only clear pressure may probe past it.
  const top = prev.steppedAtMs === undefined ? 1 : Math.max(f, prev.ceiling * (1 - CEILING_MARGIN));
  const factor = Math.max(c.floor, Math.min(top, f + (c.recoverPerSec * dtMs) / 1000));
  return {
    next: {
      ...(factor >= 1 ? forgetBracket(prev) : prev),
      factor,
      state: factor >= 1 ? 'idle' : 'recovering',
      belowReleaseSinceMs,
    },
    action: { kind: 'recover', belowForMs: nowMs - belowReleaseSinceMs },
  };
}

/**
 * One step of the bisection toward a known ceiling (see "Step back"), while the current pressure
 * has been clear for clearMs: undefined once the ceiling is forgotten (fast recovery to 1 goes on).
 */
function stepBack(
  c: ControllerConfig,
  prev: ControllerState,
  nowMs: number,
  dtMs: number,
  s: number,
): ControllerStep | undefined {
  const f = prev.factor;
  // Clear at this very level: since the last step, or since the pressure cleared.
  const clearHereMs = nowMs - Math.max(prev.clearSinceMs ?? nowMs, prev.steppedAtMs ?? -Infinity);
  const top = prev.ceiling * (1 - CEILING_MARGIN);
  const belowReleaseSinceMs = s < c.releaseAt ? (prev.belowReleaseSinceMs ?? nowMs) : undefined;
  if (f < top) {
    if (clearHereMs < c.clearMs) {
      return {
        next: { ...prev, state: 'holding', belowReleaseSinceMs },
        action: { kind: 'step-wait', clearForMs: clearHereMs, ceiling: prev.ceiling },
      };
    }
    const factor = Math.min(top, f + (prev.ceiling - f) / 2);
    return {
      next: { ...prev, factor, lowBound: f, steppedAtMs: nowMs, state: 'recovering', belowReleaseSinceMs },
      action: { kind: 'step-back', from: f, ceiling: prev.ceiling },
    };
  }
  // At the top (seen clear there for clearMs: it bounds the next cut), probe past the ceiling by
  // recoverPerSec; once at or above it with the pressure clear for 2·clearMs, the load that
  // overloaded there has gone: the ceiling is forgotten and fast recovery takes over.
  const aboveSinceMs = f >= prev.ceiling ? (prev.aboveCeilingSinceMs ?? nowMs) : undefined;
  if (aboveSinceMs !== undefined && nowMs - aboveSinceMs >= 2 * c.clearMs) return undefined;
  const factor = Math.min(1, f + (c.recoverPerSec * dtMs) / 1000);
  return {
    next: {
      ...prev,
      factor,
      lowBound: Math.max(prev.lowBound, top),
      steppedAtMs: prev.steppedAtMs ?? nowMs,
      aboveCeilingSinceMs: aboveSinceMs,
      state: 'recovering',
      belowReleaseSinceMs,
    },
    action: { kind: 'probe', ceiling: prev.ceiling },
  };
}

/** The bracket of the step back, forgotten: no ceiling, no level known clear. */
function forgetBracket(st: ControllerState): ControllerState {
  return { ...st, ceiling: 1, lowBound: 0, steppedAtMs: undefined, aboveCeilingSinceMs: undefined };
}

/**
 * Why a cut is due now, or undefined to wait. Never within cutIntervalMs of the last cut. The first
 * cut of an episode (no cut yet, or the last one's effect long settled) is due at once; later ones
 * when the level rose past its value at the last cut, or made no progress for the dead time.
 */
function cutReason(
  c: ControllerConfig,
  st: ControllerState,
  nowMs: number,
  level: number,
): 'first' | 'rising' | 'stalled' | undefined {
  if (st.lastCutAtMs === undefined) return 'first';
  const sinceCut = nowMs - st.lastCutAtMs;
  if (sinceCut < c.cutIntervalMs) return undefined;
  // A new episode: the controller had left the engaged state since its last cut.
  if (st.state !== 'engaged') return 'first';
  if (st.gallop > 0) {
    // Landed on a level seen clear: give it twice the dead time (the reading lags the factor).
    return nowMs - st.progressAtMs >= Math.min(c.maxDeadTimeMs, 2 * st.deadTimeMs) ? 'stalled' : undefined;
  }
  if (level > st.cutLevel + RISE_MARGIN) return 'rising';
  if (nowMs - st.progressAtMs >= st.deadTimeMs) return 'stalled';
  return undefined;
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
