/**
 * The Governor: samples signals on its own timer, smooths the dominant pressure over time, and
 * turns it into a throttle factor that limiters read (it is a FactorSource). Every factor change is
 * an event with a human reason. It never throws into the application: failing signals and throwing
 * listeners are reported, counted and skipped.
 */
import { channel } from 'node:diagnostics_channel';
import { EventEmitter } from 'eventemitter3';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { ConfigError } from '../errors.js';
import { effectiveFactor } from '../limiters/priority.js';
import type { FactorSource, Priority } from '../limiters/types.js';
import { FACTOR_CHANNEL, type FactorMessage } from '../observability/channels.js';
import type { Signal, SignalFailureMode } from '../signals/types.js';
import { clockOption, finiteNumber, knownKeys, oneOf, positiveNumber } from '../validate.js';
import {
  type ControllerAction,
  type ControllerConfig,
  type ControllerState,
  controllerStep,
  type GovernorState,
  initialControllerState,
} from './controller.js';
import { dominantReading, type PressureReading, signalPressure } from './pressure.js';
import { TimeEwma } from './smoothing.js';

export type GovernorMode = 'enforce' | 'shadow';

export interface GovernorOptions {
  /**
   * What to measure. At least one; names must be unique.
   * @default defaultSignals() when created through `createGovernor` without signals
   */
  signals: readonly Signal[];
  /** Time between samples, in ms. @default 250 */
  intervalMs?: number;
  /** Time constant τ of the pressure EWMA, in ms (after τ a step has moved it 63%). @default 2000 */
  smoothingMs?: number;
  /** Smoothed pressure above which the governor engages and cuts, from 0 to 1 (exclusive). @default 0.5 */
  engageAt?: number;
  /** Smoothed pressure below which the factor may recover; from 0, less than `engageAt`. @default 0.2 */
  releaseAt?: number;
  /** The lowest factor, from 0 to 1 (exclusive). @default 0.05 */
  floor?: number;
  /** The largest fraction of the factor cut in one tick, from 0 to 1 (exclusive). @default 0.2 */
  maxCutPerTick?: number;
  /**
   * The least time between two cuts, in ms: the effect of a cut (the queue it leaves draining) must
   * show before the next one. 0 allows a cut on every tick. @default 1000
   */
  cutIntervalMs?: number;
  /**
   * The longest the governor waits for a cut to show before cutting again, in ms: the bound of the
   * measured dead time (from a cut to the first fall of the pressure). At least `cutIntervalMs`.
   * @default 5000
   */
  maxDeadTimeMs?: number;
  /** How fast the factor recovers, in factor units per second (additive). @default 0.05 */
  recoverPerSec?: number;
  /**
   * Once the current pressure has been 0 (every signal at or below its target) this long, in ms,
   * the factor recovers fast (see `recoverHalfLifeMs`), without waiting for the smoothed pressure.
   * @default 1000
   */
  clearMs?: number;
  /** Fast recovery halves the gap between the factor and 1 every this many ms. @default 500 */
  recoverHalfLifeMs?: number;
  /** Time after the last cut before recovery may start, in ms. @default 2000 */
  cooldownMs?: number;
  /** Time after start during which the governor observes but does not throttle, in ms. @default 10000 */
  warmupMs?: number;
  /**
   * Strong evidence ends the warm-up early: a reading at least twice as far past its target as its
   * limit is (unclamped pressure >= 2) for this long, in ms. A process started into an overload
   * sheds after this, not after `warmupMs`. @default 2000
   */
  warmupEvidenceMs?: number;
  /** `shadow` computes and reports the factor but applies 1. @default 'enforce' */
  mode?: GovernorMode;
  /** @default systemClock */
  clock?: Clock;
}

/** The resolved options: every field present. */
export type ResolvedGovernorOptions = Required<GovernorOptions>;

/** The defaults, justified in docs/governor.md. */
export const GOVERNOR_DEFAULTS = Object.freeze({
  intervalMs: 250,
  smoothingMs: 2000,
  engageAt: 0.5,
  releaseAt: 0.2,
  floor: 0.05,
  maxCutPerTick: 0.2,
  cutIntervalMs: 1000,
  maxDeadTimeMs: 5000,
  recoverPerSec: 0.05,
  clearMs: 1000,
  recoverHalfLifeMs: 500,
  cooldownMs: 2000,
  warmupMs: 10_000,
  warmupEvidenceMs: 2000,
  mode: 'enforce' as GovernorMode,
  clock: systemClock as Clock,
});

const OPTION_KEYS = [
  'signals',
  'intervalMs',
  'smoothingMs',
  'engageAt',
  'releaseAt',
  'floor',
  'maxCutPerTick',
  'cutIntervalMs',
  'maxDeadTimeMs',
  'recoverPerSec',
  'clearMs',
  'recoverHalfLifeMs',
  'cooldownMs',
  'warmupMs',
  'warmupEvidenceMs',
  'mode',
  'clock',
] as const;

/** The dominant signal of a tick, as records show it. */
export interface DominantSignal {
  readonly name: string;
  readonly unit: string;
  /** The reading; NaN when the signal failed and counted as overloaded. */
  readonly value: number;
  readonly target: number;
  readonly limit: number;
  /** From 0 to 1. */
  readonly pressure: number;
}

/** Why and how the factor changed. One per change, emitted as 'change'. */
export interface DecisionRecord {
  /** Clock time of the tick, in ms. */
  readonly atMs: number;
  readonly previousFactor: number;
  /** The computed factor, from floor to 1. */
  readonly factor: number;
  /** What limiters get: `factor` in enforce mode, 1 in shadow mode. */
  readonly appliedFactor: number;
  readonly state: GovernorState;
  /** This tick's pressure (the dominant signal's), from 0 to 1. */
  readonly pressure: number;
  /** The smoothed pressure, from 0 to 1. */
  readonly smoothedPressure: number;
  readonly dominant: DominantSignal | undefined;
  /** Each signal's pressure this tick; a failed signal in `ignore` mode is absent. */
  readonly pressures: Readonly<Record<string, number>>;
  /** For humans and logs, such as "engaged: event-loop-delay 184 ms > target 20 ms (pressure 0.91); smoothed …". */
  readonly reason: string;
}

export interface SignalStatus {
  readonly unit: string;
  /** The last good reading, or undefined if there has been none. */
  readonly value: number | undefined;
  readonly target: number;
  readonly limit: number;
  /** The pressure at the last tick (1 for a failed `overloaded` signal, 0 for a failed `ignore` one). */
  readonly pressure: number;
  /** Failed samples since construction. */
  readonly failures: number;
  readonly onFailure: SignalFailureMode;
  /** Whether the last sample succeeded (true before the first tick). */
  readonly ok: boolean;
}

/** The governor's state now, for status endpoints and the 'tick' event. */
export interface GovernorSnapshot {
  readonly atMs: number;
  readonly running: boolean;
  readonly mode: GovernorMode;
  readonly factor: number;
  readonly appliedFactor: number;
  readonly state: GovernorState;
  readonly pressure: number;
  readonly smoothedPressure: number;
  readonly dominant: DominantSignal | undefined;
  readonly signals: Readonly<Record<string, SignalStatus>>;
  /** Ticks since construction. */
  readonly ticks: number;
  /** Errors thrown by event listeners and subscribers, caught and counted. */
  readonly listenerErrors: number;
}

export interface SignalErrorEvent {
  readonly atMs: number;
  readonly signal: string;
  readonly error: unknown;
  /** What the failure counted as this tick. */
  readonly onFailure: SignalFailureMode;
  readonly failures: number;
}

export interface GovernorEvents {
  /** The computed factor changed (in shadow mode too). */
  change: (record: DecisionRecord) => void;
  /** The controller state changed (for example engaged at the floor, where the factor does not change). */
  state: (record: DecisionRecord) => void;
  /** After every tick. */
  tick: (snapshot: GovernorSnapshot) => void;
  /** A signal threw or returned something that is not a finite number. */
  signalError: (event: SignalErrorEvent) => void;
  /** A listener or subscriber threw; the governor went on. */
  listenerError: (error: unknown, event: string) => void;
}

interface SignalSlot {
  readonly signal: Signal;
  readonly onFailure: SignalFailureMode;
  value: number | undefined;
  pressure: number;
  failures: number;
  ok: boolean;
}

interface Reading extends PressureReading {
  readonly slot: SignalSlot;
}

const factorChannel = channel(FACTOR_CHANNEL);

export class Governor extends EventEmitter<GovernorEvents> implements FactorSource {
  /** The resolved, frozen options. */
  readonly options: Readonly<ResolvedGovernorOptions>;
  readonly #clock: Clock;
  readonly #config: ControllerConfig;
  readonly #slots: SignalSlot[];
  readonly #ewma: TimeEwma;
  readonly #subscribers = new Set<(factor: number) => void>();
  #ctl: ControllerState;
  #running = false;
  #epochSet = false;
  #timer: TimerHandle | undefined;
  #lastTickAtMs: number | undefined;
  #lastAtMs: number;
  #pressure = 0;
  #dominant: DominantSignal | undefined;
  #ticks = 0;
  #listenerErrors = 0;
  #applied = 1;

  constructor(options: GovernorOptions) {
    super();
    this.options = resolveGovernorOptions(options);
    const o = this.options;
    this.#clock = o.clock;
    this.#config = {
      intervalMs: o.intervalMs,
      engageAt: o.engageAt,
      releaseAt: o.releaseAt,
      floor: o.floor,
      maxCutPerTick: o.maxCutPerTick,
      cutIntervalMs: o.cutIntervalMs,
      maxDeadTimeMs: o.maxDeadTimeMs,
      recoverPerSec: o.recoverPerSec,
      clearMs: o.clearMs,
      recoverHalfLifeMs: o.recoverHalfLifeMs,
      cooldownMs: o.cooldownMs,
      warmupMs: o.warmupMs,
      warmupEvidenceMs: o.warmupEvidenceMs,
    };
    this.#slots = o.signals.map((signal) => ({
      signal,
      onFailure: signal.onFailure ?? 'ignore',
      value: undefined,
      pressure: 0,
      failures: 0,
      ok: true,
    }));
    this.#ewma = new TimeEwma(o.smoothingMs);
    this.#lastAtMs = this.#clock.now();
    this.#ctl = { ...initialControllerState(this.#lastAtMs, o.cutIntervalMs), state: 'stopped' };
  }

  /** The factor limiters apply, from floor to 1 (always 1 in shadow mode, while warming or stopped). */
  get factor(): number {
    return this.#applied;
  }

  /**
   * The pressure of the last tick, from 0 to 1 (0: every signal at or below its target). Cheap to
   * read: the Shedder reads it on refusals at factor 1 to decide whether to probe (see shedder.ts).
   */
  get pressure(): number {
    return this.#pressure;
  }

  /** The factor the controller computed, applied or not. */
  get computedFactor(): number {
    return this.#ctl.factor;
  }

  get state(): GovernorState {
    return this.#ctl.state;
  }

  get running(): boolean {
    return this.#running;
  }

  /** The effective factor for `priority`: `effectiveFactor(factor, priority)`, from 0 to 1. */
  factorFor(priority: Priority): number {
    return effectiveFactor(this.#applied, priority);
  }

  /** Calls `listener` with the applied factor after every change of it. Returns the unsubscribe function. */
  subscribe(listener: (factor: number) => void): () => void {
    if (typeof listener !== 'function') throw new ConfigError('listener', listener, 'a function');
    // A wrapper, so that subscribing the same function twice gives two independent subscriptions.
    const entry = (f: number) => listener(f);
    this.#subscribers.add(entry);
    return () => {
      this.#subscribers.delete(entry);
    };
  }

  /**
   * Watches one more signal from the next tick on (started at once if the governor runs), for parts
   * built after the governor: the HTTP guard adds its refusal share this way. The signal is
   * validated like `signals`, and its name must be new. Returns a function that stops watching it
   * (and stops it, if the governor started it); `options.signals` lists only the signals given at
   * construction.
   */
  addSignal(signal: Signal): () => void {
    const [checked] = validateSignals([signal], 'signal');
    if (this.#slots.some((s) => s.signal.name === checked!.name)) {
      throw new ConfigError('signal.name', checked!.name, 'a name no other signal of this governor has');
    }
    const slot: SignalSlot = {
      signal: checked!,
      onFailure: checked!.onFailure ?? 'ignore',
      value: undefined,
      pressure: 0,
      failures: 0,
      ok: true,
    };
    this.#slots.push(slot);
    if (this.#running) this.#startSlot(slot, this.#clock.now());
    return () => {
      const i = this.#slots.indexOf(slot);
      if (i < 0) return;
      this.#slots.splice(i, 1);
      if (this.#running) this.#stopSlot(slot, this.#clock.now());
    };
  }

  #startSlot(slot: SignalSlot, now: number): void {
    const start = slot.signal.start;
    if (start === undefined) return;
    try {
      start.call(slot.signal);
    } catch (error) {
      this.#signalFailed(slot, error, now);
    }
  }

  #stopSlot(slot: SignalSlot, now: number): void {
    const stop = slot.signal.stop;
    if (stop === undefined) return;
    try {
      stop.call(slot.signal);
    } catch (error) {
      this.#signalFailed(slot, error, now);
    }
  }

  /**
   * Starts the signals and the sampling timer; the warm-up begins now. Idempotent. A restart after
   * `stop()` begins afresh: factor 1, smoothed pressure 0, a new warm-up.
   */
  start(): this {
    if (this.#running) return this;
    this.#running = true;
    const now = this.#clock.now();
    const previousState = this.#ctl.state;
    this.#reset(now, now);
    this.#publish(
      now,
      this.#ctl.factor,
      { kind: this.#ctl.state === 'warming' ? 'warming' : 'idle', elapsedMs: 0 },
      undefined,
      [],
      previousState,
    );
    for (const slot of this.#slots) this.#startSlot(slot, now);
    this.#schedule();
    return this;
  }

  /**
   * Stops the timer and every signal; nothing is left running. The factor returns to 1 (a governor
   * that no longer measures must not keep throttling). Idempotent.
   */
  stop(): this {
    if (!this.#running) return this;
    this.#running = false;
    this.#timer?.cancel();
    this.#timer = undefined;
    const now = this.#clock.now();
    for (const slot of this.#slots) this.#stopSlot(slot, now);
    const previous = this.#ctl.factor;
    const previousState = this.#ctl.state;
    this.#epochSet = false;
    this.#ctl = { ...this.#ctl, factor: 1, state: 'stopped' };
    this.#publish(
      now,
      previous,
      { kind: 'idle' },
      'stopped: the governor no longer measures, factor 1',
      [],
      previousState,
    );
    return this;
  }

  /**
   * Samples every signal once, now, and updates the factor. The timer calls it; simulations call it
   * directly (without `start()`, the first tick marks the start of the warm-up). Never throws.
   */
  tick(): void {
    try {
      this.#tick();
    } catch (error) {
      // Only a bug in the governor itself could land here (signals and listeners are guarded one
      // by one); the application must not pay for it.
      this.#listenerErrors++;
      this.#safeEmitError(error, 'tick');
    }
  }

  /** The state now, for status endpoints. Builds a fresh object. */
  snapshot(): GovernorSnapshot {
    const signals: Record<string, SignalStatus> = {};
    for (const s of this.#slots) {
      signals[s.signal.name] = {
        unit: s.signal.unit,
        value: s.value,
        target: s.signal.target,
        limit: s.signal.limit,
        pressure: s.pressure,
        failures: s.failures,
        onFailure: s.onFailure,
        ok: s.ok,
      };
    }
    return {
      atMs: this.#lastAtMs,
      running: this.#running,
      mode: this.options.mode,
      factor: this.#ctl.factor,
      appliedFactor: this.#applied,
      state: this.#ctl.state,
      pressure: this.#pressure,
      smoothedPressure: this.#ewma.value,
      dominant: this.#dominant,
      signals,
      ticks: this.#ticks,
      listenerErrors: this.#listenerErrors,
    };
  }

  /** A fresh epoch: factor 1, smoothed pressure 0, the warm-up from `now`. */
  #reset(now: number, lastTickAtMs: number | undefined): void {
    this.#epochSet = true;
    const initial = initialControllerState(now, this.options.cutIntervalMs);
    this.#ctl = this.options.warmupMs > 0 ? initial : { ...initial, state: 'idle' };
    this.#ewma.reset(0);
    this.#lastTickAtMs = lastTickAtMs;
    this.#pressure = 0;
    this.#dominant = undefined;
    this.#setApplied(1);
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      this.tick();
      if (this.#running && this.#timer === undefined) this.#schedule();
    }, this.options.intervalMs);
  }

  #tick(): void {
    const now = this.#clock.now();
    // Driven by hand without start(): the first tick starts the epoch and counts as one interval.
    if (!this.#epochSet) this.#reset(now, undefined);
    const dt =
      this.#lastTickAtMs === undefined ? this.options.intervalMs : Math.max(0, now - this.#lastTickAtMs);
    this.#lastTickAtMs = now;
    this.#lastAtMs = now;
    this.#ticks++;

    const readings: Reading[] = [];
    for (const slot of this.#slots) {
      const sig = slot.signal;
      let value: unknown;
      let error: unknown;
      try {
        value = sig.sample(now);
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          error = new TypeError(
            `signal ${sig.name} returned ${typeof value === 'number' ? String(value) : typeof value}, not a finite number`,
          );
        }
      } catch (e) {
        error = e;
      }
      if (error === undefined) {
        const v = value as number;
        slot.ok = true;
        slot.value = v;
        slot.pressure = signalPressure(v, sig.target, sig.limit);
        readings.push({
          slot,
          name: sig.name,
          unit: sig.unit,
          value: v,
          target: sig.target,
          limit: sig.limit,
          pressure: slot.pressure,
        });
      } else {
        this.#signalFailed(slot, error, now);
        if (slot.onFailure === 'overloaded') {
          readings.push({
            slot,
            name: sig.name,
            unit: sig.unit,
            value: Number.NaN,
            target: sig.target,
            limit: sig.limit,
            pressure: 1,
          });
        }
      }
    }

    const top = dominantReading(readings);
    this.#pressure = top?.pressure ?? 0;
    // The level: the highest unclamped pressure, so that a queue draining from 30 times its limit
    // shows progress to the controller while its pressure still reads 1. A failed signal counts 1.
    let level = this.#pressure;
    for (const r of readings) {
      if (Number.isNaN(r.value)) continue;
      const l = (r.value - r.target) / (r.limit - r.target);
      if (l > level) level = l;
    }
    this.#dominant =
      top === undefined
        ? undefined
        : {
            name: top.name,
            unit: top.unit,
            value: top.value,
            target: top.target,
            limit: top.limit,
            pressure: top.pressure,
          };
    const smoothed = this.#ewma.update(this.#pressure, dt);

    const previous = this.#ctl.factor;
    const previousState = this.#ctl.state;
    const step = controllerStep(this.#config, this.#ctl, {
      nowMs: now,
      dtMs: dt,
      pressure: this.#pressure,
      smoothedPressure: smoothed,
      level,
    });
    this.#ctl = step.next;
    if (this.#ctl.factor !== previous || this.#ctl.state !== previousState) {
      this.#publish(now, previous, step.action, undefined, readings, previousState);
    }
    if (this.listenerCount('tick') > 0) this.#emit('tick', this.snapshot());
  }

  #publish(
    now: number,
    previous: number,
    action: ControllerAction,
    reasonOverride?: string,
    readings: readonly Reading[] = [],
    previousState?: GovernorState,
  ): void {
    const factorChanged = this.#ctl.factor !== previous;
    this.#setApplied(this.options.mode === 'enforce' && this.#ctl.state !== 'warming' ? this.#ctl.factor : 1);
    const wantChange = factorChanged && this.listenerCount('change') > 0;
    const wantState = this.#ctl.state !== previousState && this.listenerCount('state') > 0;
    // Published only when someone listens: building the record costs nothing otherwise.
    const wantChannel = factorChanged && factorChannel.hasSubscribers;
    if (!wantChange && !wantState && !wantChannel) return;
    const pressures: Record<string, number> = {};
    for (const r of readings) pressures[r.name] = r.pressure;
    const record: DecisionRecord = {
      atMs: now,
      previousFactor: previous,
      factor: this.#ctl.factor,
      appliedFactor: this.#applied,
      state: this.#ctl.state,
      pressure: this.#pressure,
      smoothedPressure: this.#ewma.value,
      dominant: this.#dominant,
      pressures,
      reason: reasonOverride ?? this.#reason(action, now),
    };
    if (wantState) this.#emit('state', record);
    if (wantChange) this.#emit('change', record);
    if (wantChannel) factorChannel.publish({ ...record, governor: this } satisfies FactorMessage);
  }

  #setApplied(factor: number): void {
    if (factor === this.#applied) return;
    this.#applied = factor;
    for (const listener of this.#subscribers) {
      try {
        listener(factor);
      } catch (error) {
        this.#listenerErrors++;
        this.#safeEmitError(error, 'subscribe');
      }
    }
  }

  #reason(action: ControllerAction, now: number): string {
    const c = this.#config;
    const s = this.#ewma.value;
    const p = this.#pressure;
    const d = this.#dominant;
    const who =
      d === undefined
        ? `pressure ${fmt(p)}`
        : Number.isNaN(d.value)
          ? `${d.name} failed (counted as overloaded, pressure 1)`
          : `${d.name} ${fmt(d.value)}${unit(d.unit)} ${d.value > d.target ? '>' : '<='} target ${fmt(d.target)}${unit(d.unit)} (pressure ${fmt(d.pressure)})`;
    switch (action.kind) {
      case 'warming':
        return `warming: ${secs(action.elapsedMs)} of ${secs(c.warmupMs)} warm-up, observing only; ${who}`;
      case 'warmup-ended':
        return `engaged early: ${who}; past twice its limit for ${secs(action.evidenceMs)} during the warm-up`;
      case 'cut':
        return `engaged: ${who}; smoothed ${fmt(s)} > engage ${fmt(c.engageAt)}, cut ${fmt(action.cut * 100)}% to ${factorText(this.#ctl.factor)}${CUT_WHY[action.why]}`;
      case 'dead-time':
        return `engaged: ${who}; smoothed ${fmt(s)} > engage ${fmt(c.engageAt)}, waiting for the last cut to show (${secs(action.sinceCutMs)} of a ${secs(action.deadTimeMs)} dead time)`;
      case 'draining':
        return `engaged: ${who}; smoothed ${fmt(s)} > engage ${fmt(c.engageAt)}, the last cut is working (level ${fmt(action.level)} falling); not cutting`;
      case 'at-floor':
        return `engaged: ${who}; smoothed ${fmt(s)} > engage ${fmt(c.engageAt)}, holding at the floor ${fmt(c.floor)}`;
      case 'raw-below-engage':
        return `engaged: smoothed pressure ${fmt(s)} > engage ${fmt(c.engageAt)} but the current ${fmt(p)} is not; not cutting`;
      case 'band':
        return `holding: smoothed pressure ${fmt(s)} between release ${fmt(c.releaseAt)} and engage ${fmt(c.engageAt)}`;
      case 'cooldown':
        return `holding: pressure ${fmt(s)} below release ${fmt(c.releaseAt)}, cool-down ${secs(action.sinceCutMs)} of ${secs(c.cooldownMs)} since the last cut`;
      case 'recover-fast':
        return `${this.#ctl.factor >= 1 ? 'recovered' : 'recovering'}: no pressure for ${secs(action.clearForMs)}; factor ${factorText(this.#ctl.factor)}`;
      case 'step-back':
        return `stepping back: no pressure at ${factorText(action.from)}, half way back toward ${factorText(action.ceiling)} (the factor before the last cut): factor ${factorText(this.#ctl.factor)}`;
      case 'step-wait':
        return `holding: no pressure for ${secs(action.clearForMs)} at ${factorText(this.#ctl.factor)}, under ${factorText(action.ceiling)} (the factor before the last cut)`;
      case 'probe':
        return `probing: no pressure at ${factorText(this.#ctl.factor)}, near ${factorText(action.ceiling)} (the factor before the last cut); rising by ${fmt(c.recoverPerSec)}/s`;
      case 'recover':
        return `${this.#ctl.factor >= 1 ? 'recovered' : 'recovering'}: pressure ${fmt(s)} below release ${fmt(c.releaseAt)} for ${secs(action.belowForMs)}; factor ${factorText(this.#ctl.factor)}`;
      case 'idle':
        return `idle: smoothed pressure ${fmt(s)}, no throttling (at ${secs(now - this.#ctl.startedAtMs)} since start)`;
    }
  }

  /** Calls each listener on its own, so that one that throws neither breaks the tick nor starves the others. */
  #emit<E extends 'change' | 'state' | 'tick' | 'signalError'>(
    event: E,
    ...args: Parameters<GovernorEvents[E]>
  ): void {
    for (const fn of this.listeners(event)) {
      try {
        (fn as (...a: unknown[]) => void).apply(this, args);
      } catch (error) {
        this.#listenerErrors++;
        this.#safeEmitError(error, event);
      }
    }
  }

  #safeEmitError(error: unknown, event: string): void {
    for (const fn of this.listeners('listenerError')) {
      try {
        fn.call(this, error, event);
      } catch {
        // A throwing error listener has nowhere left to report to; it is counted once above.
      }
    }
  }

  #signalFailed(slot: SignalSlot, error: unknown, now: number): void {
    slot.failures++;
    slot.ok = false;
    slot.pressure = slot.onFailure === 'overloaded' ? 1 : 0;
    this.#emit('signalError', {
      atMs: now,
      signal: slot.signal.name,
      error,
      onFailure: slot.onFailure,
      failures: slot.failures,
    });
  }

  /**
   * A one-time listener. Overridden so that it goes through the same guarded dispatch as `on`:
   * it is removed before it is called, and a throw from it is caught and reported.
   */
  override once<T extends keyof GovernorEvents>(
    event: T,
    fn: EventEmitter.EventListener<GovernorEvents, T>,
    context?: unknown,
  ): this {
    const wrapper = ((...args: unknown[]) => {
      this.off(event, wrapper);
      (fn as (...a: unknown[]) => void).apply(context ?? this, args);
    }) as EventEmitter.EventListener<GovernorEvents, T>;
    return this.on(event, wrapper);
  }
}

const CUT_WHY = {
  first: '',
  rising: ' (still rising after the last cut)',
  stalled: ' (no progress within the dead time)',
} as const;

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
  if (a >= 10) return n.toFixed(1).replace(/\.0$/, '');
  return String(Number(n.toPrecision(2)));
}

/** A factor to 4 decimals, so that a small step never prints as no step. */
function factorText(f: number): string {
  return String(Number(f.toFixed(4)));
}

function unit(u: string): string {
  return u === 'ratio' || u === '' ? '' : ` ${u}`;
}

function secs(ms: number): string {
  return `${fmt(ms / 1000)} s`;
}

/** Validates `options` and fills in the defaults. Throws ConfigError naming the first bad option. */
export function resolveGovernorOptions(options: GovernorOptions): Readonly<ResolvedGovernorOptions> {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with at least `signals`');
  }
  knownKeys('Governor', options, OPTION_KEYS);
  const d = GOVERNOR_DEFAULTS;
  const intervalMs = finiteNumber('intervalMs', options.intervalMs ?? d.intervalMs, 1, 3_600_000);
  const smoothingMs = positiveNumber('smoothingMs', options.smoothingMs ?? d.smoothingMs);
  const engageAt = options.engageAt ?? d.engageAt;
  if (typeof engageAt !== 'number' || !(engageAt > 0 && engageAt < 1)) {
    throw new ConfigError('engageAt', engageAt, 'a number > 0 and < 1');
  }
  const releaseAt = options.releaseAt ?? d.releaseAt;
  if (typeof releaseAt !== 'number' || !(releaseAt >= 0 && releaseAt < engageAt)) {
    throw new ConfigError('releaseAt', releaseAt, `a number >= 0 and < engageAt (${engageAt})`);
  }
  const floor = options.floor ?? d.floor;
  if (typeof floor !== 'number' || !(floor >= 0 && floor < 1)) {
    throw new ConfigError('floor', floor, 'a number >= 0 and < 1');
  }
  const maxCutPerTick = options.maxCutPerTick ?? d.maxCutPerTick;
  if (typeof maxCutPerTick !== 'number' || !(maxCutPerTick > 0 && maxCutPerTick < 1)) {
    throw new ConfigError('maxCutPerTick', maxCutPerTick, 'a number > 0 and < 1');
  }
  const cutIntervalMs = finiteNumber('cutIntervalMs', options.cutIntervalMs ?? d.cutIntervalMs, 0);
  const maxDeadTimeMs = finiteNumber(
    'maxDeadTimeMs',
    options.maxDeadTimeMs ?? Math.max(d.maxDeadTimeMs, cutIntervalMs),
    cutIntervalMs,
    3_600_000,
  );
  const recoverPerSec = positiveNumber('recoverPerSec', options.recoverPerSec ?? d.recoverPerSec, 0, 1000);
  const clearMs = finiteNumber('clearMs', options.clearMs ?? d.clearMs, 0, 3_600_000);
  const recoverHalfLifeMs = positiveNumber(
    'recoverHalfLifeMs',
    options.recoverHalfLifeMs ?? d.recoverHalfLifeMs,
    0,
    3_600_000,
  );
  const cooldownMs = finiteNumber('cooldownMs', options.cooldownMs ?? d.cooldownMs, 0);
  const warmupMs = finiteNumber('warmupMs', options.warmupMs ?? d.warmupMs, 0);
  const warmupEvidenceMs = finiteNumber(
    'warmupEvidenceMs',
    options.warmupEvidenceMs ?? d.warmupEvidenceMs,
    0,
    3_600_000,
  );
  const mode = oneOf('mode', options.mode ?? d.mode, ['enforce', 'shadow'] as const);
  const clock = clockOption('clock', options.clock, d.clock);
  const signals = validateSignals(options.signals);
  return Object.freeze({
    signals,
    intervalMs,
    smoothingMs,
    engageAt,
    releaseAt,
    floor,
    maxCutPerTick,
    cutIntervalMs,
    maxDeadTimeMs,
    recoverPerSec,
    clearMs,
    recoverHalfLifeMs,
    cooldownMs,
    warmupMs,
    warmupEvidenceMs,
    mode,
    clock,
  });
}

function validateSignals(signals: unknown, option = 'signals'): readonly Signal[] {
  if (!Array.isArray(signals) || signals.length === 0) {
    throw new ConfigError('signals', signals, 'a non-empty array of Signal objects');
  }
  const names = new Set<string>();
  signals.forEach((s: unknown, i) => {
    const at = option === 'signals' ? `signals[${i}]` : option;
    if (typeof s !== 'object' || s === null) throw new ConfigError(at, s, 'a Signal object');
    const sig = s as Partial<Signal>;
    if (typeof sig.name !== 'string' || sig.name === '') {
      throw new ConfigError(`${at}.name`, sig.name, 'a non-empty string');
    }
    if (names.has(sig.name)) throw new ConfigError(`${at}.name`, sig.name, 'a name no other signal has');
    names.add(sig.name);
    if (typeof sig.unit !== 'string') throw new ConfigError(`${at}.unit`, sig.unit, 'a string');
    finiteNumber(`${at}.target`, sig.target);
    const target = sig.target as number;
    if (typeof sig.limit !== 'number' || !Number.isFinite(sig.limit) || !(sig.limit > target)) {
      throw new ConfigError(`${at}.limit`, sig.limit, `a finite number > target (${target})`);
    }
    if (typeof sig.sample !== 'function') throw new ConfigError(`${at}.sample`, sig.sample, 'a function');
    if (sig.onFailure !== undefined)
      oneOf(`${at}.onFailure`, sig.onFailure, ['ignore', 'overloaded'] as const);
    if (sig.start !== undefined && typeof sig.start !== 'function') {
      throw new ConfigError(`${at}.start`, sig.start, 'a function or undefined');
    }
    if (sig.stop !== undefined && typeof sig.stop !== 'function') {
      throw new ConfigError(`${at}.stop`, sig.stop, 'a function or undefined');
    }
  });
  return Object.freeze([...(signals as Signal[])]);
}
