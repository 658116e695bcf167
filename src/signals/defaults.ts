/**
 * The recommended default set of signals: what a Node service should watch when it knows nothing
 * else about its bottleneck. Every signal here is cheap and spawns nothing; see docs/signals.md.
 */
import type { Clock } from '../clock.js';
import { knownKeys } from '../validate.js';
import { optionsObject } from './common.js';
import { cpu } from './cpu.js';
import { eventLoopDelay } from './event-loop-delay.js';
import { eventLoopUtilization } from './event-loop-utilization.js';
import { heapMemory, rssMemory } from './memory.js';
import type { Signal } from './types.js';

export interface DefaultSignalsOptions {
  /** The governor's clock, given to the signals that time intervals. @default systemClock */
  clock?: Clock;
}

/**
 * event-loop delay (p99, 50 → 250 ms), event-loop utilisation (0.85 → 0.98), CPU (0.75 → 0.95 of
 * the cores or cgroup quota), heap (0.8 → 0.95 of the V8 limit) and RSS (0.8 → 0.95 of the
 * container limit or total memory). A new array of new signals on each call.
 */
export function defaultSignals(options?: DefaultSignalsOptions): Signal[] {
  const o = optionsObject('defaultSignals', options);
  knownKeys('defaultSignals', o, ['clock']);
  const clock = o.clock === undefined ? {} : { clock: o.clock };
  return [eventLoopDelay(clock), eventLoopUtilization(), cpu(clock), heapMemory(), rssMemory()];
}
