/** Options of the concurrency limiter, their defaults and their validation. */
import type { Clock } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { finiteNumber, integer, knownKeys, oneOf, positiveNumber, ratio } from '../../validate.js';
import type { LoopDelaySource } from '../../loop-delay.js';
import type { FactorSource } from '../types.js';
import { CODEL_DEFAULTS } from './codel.js';
import { VEGAS_DEFAULTS, type VegasOptions } from './vegas.js';

export interface CodelOptions {
  /** Sojourn time a waiter may reach while the queue stands, in ms; never below 2·holdMs/limit. @default 5 */
  targetMs?: number;
  /**
   * How long the oldest waiter must stay at or past the target for the queue to stand, and how long
   * it stands after the last waiter that reached the target, in ms. @default 100
   */
  intervalMs?: number;
}

export interface AdaptiveLimitOptions {
  /** The limit to start from, in units. @default 20 (clamped to minConcurrent..maxConcurrent) */
  initialLimit?: number;
  /** Weight of each new estimate, from 0 (exclusive) to 1. @default 1 */
  smoothing?: number;
  /** A window of samples lasts at least this long, in ms. @default 100 */
  windowMs?: number;
  /** A window holds at least this many samples. @default 10 */
  minSamples?: number;
  /** How often the no-load latency is measured again at half the limit, in ms. @default 10000 */
  probeIntervalMs?: number;
  /**
   * How late the event loop runs (src/loop-delay.ts), read once per window: a window whose rtt the
   * loop's own delay explains does not lower the limit. `false`: no discount.
   * @default the process's event-loop delay (`monitorEventLoopDelay`, 10 ms) with the system clock;
   * none with another clock (virtual time has no loop of its own)
   */
  loopDelay?: LoopDelaySource | false;
}

export interface ConcurrencyLimiterOptions {
  /** A fixed limit of units in flight, an integer >= 1. Omit it to learn the limit from latency. */
  limit?: number;
  /** Tuning of the learned limit (only without `limit`). */
  adaptive?: AdaptiveLimitOptions;
  /** The learned limit never falls below this, an integer >= 1. @default 1 */
  minConcurrent?: number;
  /** The learned limit never rises above this, an integer >= minConcurrent. @default 1000 */
  maxConcurrent?: number;
  /** Waiters held at most, an integer >= 0 (0: refuse at once when no slot is free). @default 1000 */
  maxQueue?: number;
  /** The longest a request waits for a slot, in ms (Infinity: no deadline). @default 1000 */
  maxWaitMs?: number;
  /** CoDel on sojourn time while the queue stands; `false` turns it off. @default { targetMs: 5, intervalMs: 100 } */
  codel?: CodelOptions | false;
  /**
   * `'adaptive'` serves the newest waiter first while the queue stands and the oldest otherwise;
   * `'fifo'` always serves the oldest. Priority comes first either way. @default 'adaptive'
   */
  order?: 'adaptive' | 'fifo';
  /** The throttle factor that scales the limit (a Governor, a ManualFactor or a number from 0 to 1). @default 1 */
  factor?: FactorSource | number;
  /** @default systemClock */
  clock?: Clock;
}

export const CONCURRENCY_DEFAULTS = Object.freeze({
  minConcurrent: 1,
  maxConcurrent: 1000,
  maxQueue: 1000,
  maxWaitMs: 1000,
  codel: CODEL_DEFAULTS,
  order: 'adaptive' as const,
  adaptive: VEGAS_DEFAULTS,
});

const OPTIONS = [
  'limit',
  'adaptive',
  'minConcurrent',
  'maxConcurrent',
  'maxQueue',
  'maxWaitMs',
  'codel',
  'order',
  'factor',
  'clock',
] as const;
const ADAPTIVE = ['initialLimit', 'smoothing', 'windowMs', 'minSamples', 'probeIntervalMs', 'loopDelay'] as const;
const CODEL = ['targetMs', 'intervalMs'] as const;

export interface ResolvedConcurrencyOptions {
  readonly limit: number | undefined;
  readonly vegas: VegasOptions | undefined;
  /** The adaptive limit's loop-delay source: given, `false` (none), or undefined (the default). */
  readonly loopDelay: LoopDelaySource | false | undefined;
  readonly maxQueue: number;
  readonly maxWaitMs: number;
  readonly codel: { readonly targetMs: number; readonly intervalMs: number } | undefined;
  readonly order: 'adaptive' | 'fifo';
  readonly factor: FactorSource | number;
}

/** A wait in ms: a finite number >= 0, or Infinity. */
export function waitMs(option: string, value: unknown): number {
  if (value === Infinity) return Infinity;
  return finiteNumber(option, value, 0);
}

function object(option: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(option, value, 'an object');
  }
  return value as Record<string, unknown>;
}

export function resolveConcurrencyOptions(options: ConcurrencyLimiterOptions): ResolvedConcurrencyOptions {
  const o = object('options', options) as ConcurrencyLimiterOptions;
  knownKeys('ConcurrencyLimiter', o, OPTIONS);
  const d = CONCURRENCY_DEFAULTS;
  const limit = o.limit === undefined ? undefined : integer('limit', o.limit, 1);
  if (limit !== undefined && o.adaptive !== undefined) {
    throw new ConfigError(
      'adaptive',
      o.adaptive,
      'absent when `limit` is set (a fixed limit is not learned)',
    );
  }
  const minConcurrent = integer('minConcurrent', o.minConcurrent ?? d.minConcurrent, 1);
  const maxConcurrent = integer('maxConcurrent', o.maxConcurrent ?? d.maxConcurrent, minConcurrent);
  let vegas: VegasOptions | undefined;
  let loopDelay: LoopDelaySource | false | undefined;
  if (limit === undefined) {
    const a = object('adaptive', o.adaptive ?? {});
    knownKeys('adaptive', a, ADAPTIVE);
    const v = VEGAS_DEFAULTS;
    const initial =
      a.initialLimit === undefined
        ? Math.min(maxConcurrent, Math.max(minConcurrent, v.initialLimit))
        : integer('adaptive.initialLimit', a.initialLimit, minConcurrent, maxConcurrent);
    vegas = Object.freeze({
      initialLimit: initial,
      minLimit: minConcurrent,
      maxLimit: maxConcurrent,
      smoothing: positiveNumber('adaptive.smoothing', a.smoothing ?? v.smoothing, 0, 1),
      windowMs: finiteNumber('adaptive.windowMs', a.windowMs ?? v.windowMs, 0),
      minSamples: integer('adaptive.minSamples', a.minSamples ?? v.minSamples, 1),
      probeIntervalMs: positiveNumber('adaptive.probeIntervalMs', a.probeIntervalMs ?? v.probeIntervalMs),
    });
    loopDelay = loopDelayOption(a.loopDelay);
  }
  let codel: ResolvedConcurrencyOptions['codel'];
  if (o.codel !== false) {
    const c = object('codel', o.codel ?? {});
    knownKeys('codel', c, CODEL);
    codel = Object.freeze({
      targetMs: finiteNumber('codel.targetMs', c.targetMs ?? d.codel.targetMs, 0),
      intervalMs: positiveNumber('codel.intervalMs', c.intervalMs ?? d.codel.intervalMs),
    });
  }
  let factor: FactorSource | number = 1;
  if (typeof o.factor === 'number') factor = ratio('factor', o.factor);
  else if (o.factor !== undefined) {
    const f = o.factor as Partial<FactorSource>;
    if (
      typeof f !== 'object' ||
      f === null ||
      typeof f.factorFor !== 'function' ||
      typeof f.subscribe !== 'function'
    ) {
      throw new ConfigError(
        'factor',
        o.factor,
        'a number from 0 to 1 or a FactorSource (a Governor, a ManualFactor)',
      );
    }
    factor = o.factor;
  }
  return Object.freeze({
    limit,
    vegas,
    loopDelay,
    maxQueue: integer('maxQueue', o.maxQueue ?? d.maxQueue, 0),
    maxWaitMs: waitMs('maxWaitMs', o.maxWaitMs ?? d.maxWaitMs),
    codel,
    order: oneOf('order', o.order ?? d.order, ['adaptive', 'fifo'] as const),
    factor,
  });
}

function loopDelayOption(value: unknown): LoopDelaySource | false | undefined {
  if (value === undefined || value === false) return value;
  if (typeof value !== 'object' || value === null || typeof (value as LoopDelaySource).readMs !== 'function') {
    throw new ConfigError('adaptive.loopDelay', value, 'false or a source with readMs() (ms)');
  }
  return value as LoopDelaySource;
}

/**
 * What `ConcurrencyLimiter.update` changes on a live limiter, with the same names, units and
 * bounds as the options of a new one. Settings left out keep their value.
 */
export interface ConcurrencyLimiterUpdate {
  /** The fixed limit of units in flight, an integer >= 1 (not for a limiter that learns its limit). */
  limit?: number;
  /** Waiters held at most, an integer >= 0. */
  maxQueue?: number;
  /** The longest a wait that starts from now on lasts, in ms (Infinity: no deadline). */
  maxWaitMs?: number;
}

const UPDATE = ['limit', 'maxQueue', 'maxWaitMs'] as const;

/** The options after `update`, every setting validated before any is taken. Throws ConfigError. */
export function updateConcurrencyOptions(
  current: ResolvedConcurrencyOptions,
  update: ConcurrencyLimiterUpdate,
): ResolvedConcurrencyOptions {
  const u = object('update', update) as ConcurrencyLimiterUpdate;
  knownKeys('update', u, UPDATE);
  let limit = current.limit;
  if (u.limit !== undefined) {
    if (current.limit === undefined) {
      throw new ConfigError(
        'limit',
        u.limit,
        'absent: this limiter learns its limit (adaptive); set minConcurrent/maxConcurrent when you create it',
      );
    }
    limit = integer('limit', u.limit, 1);
  }
  return Object.freeze({
    ...current,
    limit,
    maxQueue: u.maxQueue === undefined ? current.maxQueue : integer('maxQueue', u.maxQueue, 0),
    maxWaitMs: u.maxWaitMs === undefined ? current.maxWaitMs : waitMs('maxWaitMs', u.maxWaitMs),
  });
}
