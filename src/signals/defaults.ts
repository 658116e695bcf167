/**
 * The recommended default set of signals: what a Node service should watch when it knows nothing
 * else about its bottleneck. Every signal here is cheap and spawns nothing; see docs/signals.md.
 */
import type { Clock } from '../clock.js';
import { knownKeys } from '../validate.js';
import { optionsObject } from './common.js';
import { eventLoopDelay } from './event-loop-delay.js';
import { heapMemory, rssMemory } from './memory.js';
import type { Signal } from './types.js';

export interface DefaultSignalsOptions {
  /** The governor's clock, given to the signals that time intervals. @default systemClock */
  clock?: Clock;
}

/**
 * event-loop delay (p99, 50 → 250 ms), heap (0.8 → 0.95 of the V8 limit) and RSS (0.8 → 0.95 of
 * the container limit or total memory). A new array of new signals on each call.
 *
 * Event-loop utilisation and CPU are not in the default set: they measure how busy the process is,
 * not whether it is overloaded. A process that sheds well under overload is fully busy by design
 * (its loop serves what it admits and refuses the rest), so a utilisation signal would keep the
 * factor cut for as long as the overload lasts and hold goodput below capacity: measured live at
 * 3× overload, the ELU signal (target 0.85) held the factor at 0.80 and goodput at 86% of capacity.
 * Delay is what users feel and what queueing produces; memory is what kills a process. Add `cpu()`
 * when other threads or child processes compete for the CPU, and `eventLoopUtilization()` for
 * services that must keep headroom.
 */
export function defaultSignals(options?: DefaultSignalsOptions): Signal[] {
  const o = optionsObject('defaultSignals', options);
  knownKeys('defaultSignals', o, ['clock']);
  const clock = o.clock === undefined ? {} : { clock: o.clock };
  return [eventLoopDelay(clock), heapMemory(), rssMemory()];
}
