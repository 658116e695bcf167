/**
 * Any object that implements `Signal` (src/signals/types.ts) can be given to the governor. This
 * factory builds one from a read function and checks its options, for readings that are not a
 * count (a gauge in ms, a ratio, a rate) and need their own unit.
 */
import { ConfigError } from '../errors.js';
import { fn, knownKeys } from '../validate.js';
import { failureMode, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

export interface CustomSignalOptions {
  /** A stable name for records and metrics, such as `redis-latency`. */
  name: string;
  /** The unit of the reading, target and limit, such as `ms`, `ratio`, `count`. @default 'value' */
  unit?: string;
  /** Where pressure starts. */
  target: number;
  /** Where pressure reaches 1; greater than `target`. */
  limit: number;
  /** The reading at `nowMs`: synchronous and cheap. A throw or a non-finite number is a failure. */
  sample: (nowMs: number) => number;
  /** Starts any background work (called by Governor.start). */
  start?: () => void;
  /** Stops it and clears its timers (called by Governor.stop). */
  stop?: () => void;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
}

const OPTIONS = ['name', 'unit', 'target', 'limit', 'sample', 'start', 'stop', 'onFailure'] as const;

/** A Signal from your own read function, validated like the built-in ones. */
export function custom(options: CustomSignalOptions): Signal {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with name, target, limit and sample');
  }
  knownKeys('custom', options, OPTIONS);
  if (typeof options.name !== 'string' || options.name === '') {
    throw new ConfigError('name', options.name, 'a non-empty string');
  }
  const unit = options.unit ?? 'value';
  if (typeof unit !== 'string' || unit === '') throw new ConfigError('unit', unit, 'a non-empty string');
  const { target, limit } = targetAndLimit('target', options.target, 'limit', options.limit, -Infinity);
  const sample = fn<(nowMs: number) => number>('sample', options.sample);
  const start = options.start === undefined ? undefined : fn<() => void>('start', options.start);
  const stop = options.stop === undefined ? undefined : fn<() => void>('stop', options.stop);
  const signal: Signal = {
    name: options.name,
    unit,
    target,
    limit,
    onFailure: failureMode('onFailure', options.onFailure, 'ignore'),
    sample: (nowMs) => sample(nowMs),
  };
  return Object.assign(signal, start && { start }, stop && { stop });
}
