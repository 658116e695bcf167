/**
 * Queue time: how long work waits for a slot of a concurrency limiter. Each sample is the longest
 * wait seen since the previous sample: the longest wait of the requests that left the queue
 * (admitted or refused) meanwhile, or the age of the oldest one still waiting, whichever is larger.
 *
 * Queuing time is the overload signal that does not confuse a slow downstream with a busy process:
 * a pool-bound service whose event loop idles still shows its overload here.
 */
import { ConfigError } from '../errors.js';
import { knownKeys } from '../validate.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

/** What the signal reads: a ConcurrencyLimiter fits. */
export interface QueueTimeSource {
  /** Age of the oldest waiter, in ms (0 when none waits). */
  readonly oldestWaitMs: number;
  on(event: 'admitted' | 'refused', fn: (e: { readonly waitedMs: number }) => void): unknown;
  off(event: 'admitted' | 'refused', fn: (e: { readonly waitedMs: number }) => void): unknown;
}

export interface QueueTimeOptions {
  /** The wait where pressure starts, in ms. @default 20 */
  targetMs?: number;
  /** The wait where pressure reaches 1, in ms, greater than `targetMs`. @default 200 */
  limitMs?: number;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
}

export const QUEUE_TIME_DEFAULTS = Object.freeze({ targetMs: 20, limitMs: 200 });

const OPTIONS = ['targetMs', 'limitMs', 'onFailure'] as const;
const NAME = /^[a-z0-9][a-z0-9_.:-]*$/i;

/** The longest queue wait of `source` between samples. Unit `ms`. */
export function queueTime(name: string, source: QueueTimeSource, options?: QueueTimeOptions): Signal {
  if (typeof name !== 'string' || !NAME.test(name) || name.length > 64) {
    throw new ConfigError('name', name, 'a string of 1 to 64 letters, digits, `-`, `_`, `.` or `:`');
  }
  if (typeof source !== 'object' || source === null || typeof source.on !== 'function') {
    throw new ConfigError('source', source, 'a ConcurrencyLimiter (oldestWaitMs, on, off)');
  }
  const o = optionsObject('queueTime', options);
  knownKeys('queueTime', o, OPTIONS);
  const { target, limit } = targetAndLimit(
    'targetMs',
    o.targetMs ?? QUEUE_TIME_DEFAULTS.targetMs,
    'limitMs',
    o.limitMs ?? QUEUE_TIME_DEFAULTS.limitMs,
    0,
  );
  let peak = 0;
  let listening = false;
  const onLeave = (e: { readonly waitedMs: number }) => {
    if (e.waitedMs > peak) peak = e.waitedMs;
  };
  const start = () => {
    if (listening) return;
    listening = true;
    source.on('admitted', onLeave);
    source.on('refused', onLeave);
  };
  return {
    name,
    unit: 'ms',
    target,
    limit,
    onFailure: failureMode('onFailure', o.onFailure, 'ignore'),
    sample(): number {
      // Sampling before start() still reads the oldest waiter; start() adds the waits that ended.
      const v = Math.max(peak, source.oldestWaitMs);
      peak = 0;
      return v;
    },
    start,
    stop(): void {
      if (!listening) return;
      listening = false;
      source.off('admitted', onLeave);
      source.off('refused', onLeave);
    },
  };
}
