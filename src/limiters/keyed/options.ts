/** The keyed limiter's options: their types, defaults and validation, in one place. */
import { type Clock, systemClock } from '../../clock.js';
import { ConfigError } from '../../errors.js';
import { clockOption, fn, integer, knownKeys, oneOf, positiveNumber } from '../../validate.js';
import { type FactorOption, resolveFactor } from '../factor-option.js';
import type { FactorSource, Priority } from '../types.js';
import type { BlockOptions } from './block.js';
import type { BucketLimits, TierLookup } from './tiers.js';

export interface KeyedLimiterOptions {
  /** The per-key algorithm: a token bucket (this), or a window (see KeyedWindowLimiterOptions). @default 'token-bucket' */
  algorithm?: 'token-bucket';
  /** Tokens per second for each key at factor 1 (keys without a tier). A finite number > 0. */
  ratePerSec: number;
  /** Capacity of each key's bucket at factor 1 (keys without a tier). A finite number > 0. */
  burst: number;
  /**
   * The most keys held at once; past it the least recently used key is evicted (CLOCK), full
   * buckets first. An integer from 1 to 2^30. @default 100_000
   */
  maxKeys?: number;
  /**
   * A key's own rate and burst (free vs premium), or undefined for the defaults. Called when a
   * key's bucket is created; the answer is kept with the bucket until it is evicted or deleted
   * (delete the key to apply a new tier at once). @default none: every key gets ratePerSec, burst
   */
  tiers?: (key: string) => BucketLimits | undefined;
  /** A bucket every request also passes: a capacity for the whole process. @default none */
  global?: BucketLimits;
  /**
   * Where the throttle factor comes from: a FactorSource to follow (a Governor, a ManualFactor),
   * or a fixed number from 0 to 1. @default 1
   */
  factor?: FactorOption;
  /**
   * Blocks a key refused `afterRefusals` times in a row (as 'limited') for `durationMs` ms: during the
   * block it is refused with reason 'blocked'. An admission, or a bucket refilling to full, ends the
   * streak. `afterRefusals`: an integer >= 1; `durationMs`: a finite number > 0 (ms). @default none
   */
  block?: BlockOptions;
  /** @default systemClock */
  clock?: Clock;
}

export interface TakeOptions {
  /** Tokens this request costs, before priority scaling: a finite number > 0 and <= the key's burst. @default 1 */
  cost?: number;
  /** How late this request is shed. @default 'normal' */
  priority?: Priority;
}

export interface KeyedAcquireOptions extends TakeOptions {
  /**
   * The longest this call may wait, in ms. A request that would wait longer is refused at once
   * (the promise resolves with the refusal). @default Infinity
   */
  maxWaitMs?: number;
  /** Cancels the wait: the promise rejects with an AbortError and the reserved tokens are refunded. */
  signal?: AbortSignal;
}

/** The options after validation, with defaults applied. */
export interface ResolvedKeyedOptions {
  readonly limits: BucketLimits;
  readonly maxKeys: number;
  readonly tiers: TierLookup | undefined;
  readonly global: BucketLimits | undefined;
  readonly factor: FactorSource | undefined;
  readonly initialFactor: number;
  readonly block: BlockOptions | undefined;
  readonly clock: Clock;
}

export const KEYED_DEFAULTS = Object.freeze({ maxKeys: 100_000 });
const MAX_MAX_KEYS = 2 ** 30;
const OPTIONS = [
  'algorithm',
  'ratePerSec',
  'burst',
  'maxKeys',
  'tiers',
  'global',
  'factor',
  'block',
  'clock',
] as const;
const LIMITS = ['ratePerSec', 'burst'] as const;
const BLOCK = ['afterRefusals', 'durationMs'] as const;

/** Validates `options`; every error is a ConfigError naming the option. */
export function resolveKeyedOptions(options: KeyedLimiterOptions): ResolvedKeyedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with ratePerSec and burst');
  }
  knownKeys('createLimiter', options, OPTIONS);
  if (options.algorithm !== undefined) oneOf('algorithm', options.algorithm, ['token-bucket']);
  const ratePerSec = positiveNumber('ratePerSec', options.ratePerSec);
  const burst = positiveNumber('burst', options.burst);
  const maxKeys = integer('maxKeys', options.maxKeys ?? KEYED_DEFAULTS.maxKeys, 1, MAX_MAX_KEYS);
  const tiers = options.tiers === undefined ? undefined : fn<TierLookup>('tiers', options.tiers);
  const global = options.global === undefined ? undefined : globalLimits(options.global);
  const block = options.block === undefined ? undefined : blockOptions(options.block);
  const clock = clockOption('clock', options.clock, systemClock);
  const factor = resolveFactor(options.factor);
  return {
    limits: { ratePerSec, burst },
    maxKeys,
    tiers,
    global,
    factor: factor.source,
    initialFactor: factor.initial,
    block,
    clock,
  };
}

function globalLimits(g: BucketLimits): BucketLimits {
  if (typeof g !== 'object' || g === null) {
    throw new ConfigError('global', g, 'an object { ratePerSec, burst }');
  }
  knownKeys('global', g, LIMITS);
  return {
    ratePerSec: positiveNumber('global.ratePerSec', g.ratePerSec),
    burst: positiveNumber('global.burst', g.burst),
  };
}

function blockOptions(b: BlockOptions): BlockOptions {
  if (typeof b !== 'object' || b === null) {
    throw new ConfigError('block', b, 'an object { afterRefusals, durationMs }');
  }
  knownKeys('block', b, BLOCK);
  return {
    afterRefusals: integer('block.afterRefusals', b.afterRefusals, 1),
    durationMs: positiveNumber('block.durationMs', b.durationMs),
  };
}
