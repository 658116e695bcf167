/**
 * Queue depth: any count the application can read synchronously, such as a pool's waiting
 * clients (`pool.waitingCount`), requests in flight, or jobs queued.
 */
import { ConfigError } from '../errors.js';
import { fn, knownKeys } from '../validate.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

export interface QueueDepthOptions {
  /** The count where pressure starts (>= 0). @default 0 */
  target?: number;
  /** The count where pressure reaches 1, greater than `target`. Required: only you know your queue. */
  limit: number;
  /**
   * What a `read` that throws, or returns something other than a finite number >= 0, means.
   * `'ignore'` by default: a synchronous read of a property fails through a bug (the pool was
   * replaced, a typo), not through load, and failing closed would turn that bug into shedding all
   * traffic. Choose `'overloaded'` when `read` is itself a health probe whose failure means overload.
   * @default 'ignore'
   */
  onFailure?: SignalFailureMode;
}

const OPTIONS = ['target', 'limit', 'onFailure'] as const;
const NAME = /^[a-z0-9][a-z0-9_.:-]*$/i;

/** The number `read()` returns, such as a pool's waiting count. Unit `count`. */
export function queueDepth(name: string, read: () => number, options: QueueDepthOptions): Signal {
  if (typeof name !== 'string' || !NAME.test(name) || name.length > 64) {
    throw new ConfigError('name', name, 'a string of 1 to 64 letters, digits, `-`, `_`, `.` or `:`');
  }
  const reader = fn<() => number>('read', read);
  const o = optionsObject('queueDepth', options);
  knownKeys('queueDepth', o, OPTIONS);
  if (o.limit === undefined) throw new ConfigError('limit', o.limit, 'a finite number > target (required)');
  const { target, limit } = targetAndLimit('target', o.target ?? 0, 'limit', o.limit, 0);
  return {
    name,
    unit: 'count',
    target,
    limit,
    onFailure: failureMode('onFailure', o.onFailure, 'ignore'),
    sample(): number {
      // A throw from read() propagates to the governor, which applies onFailure and reports it.
      const v = reader();
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new Error(`queueDepth('${name}'): read() returned ${String(v)}, expected a finite number >= 0`);
      }
      return v;
    },
  };
}
