/**
 * Event-loop utilisation: the fraction of wall time the loop spent running JavaScript and native
 * callbacks rather than waiting in the poll phase, per sampling interval, from
 * `performance.eventLoopUtilization(previous)` deltas (never the cumulative value since start).
 */
import { type EventLoopUtilization, performance } from 'node:perf_hooks';
import { fn, knownKeys } from '../validate.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

/**
 * `performance.eventLoopUtilization`'s shape: cumulative with no argument; with two, the delta
 * `a − b` between two cumulative readings.
 */
export type EluReader = (a?: EventLoopUtilization, b?: EventLoopUtilization) => EventLoopUtilization;

export interface EventLoopUtilizationOptions {
  /** Utilisation where pressure starts, from 0 to 1. @default 0.85 */
  target?: number;
  /** Utilisation where pressure reaches 1, from 0 to 1, greater than `target`. @default 0.98 */
  limit?: number;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
  /** The ELU source (tests inject a fake). @default performance.eventLoopUtilization */
  read?: EluReader;
}

export const EVENT_LOOP_UTILIZATION_DEFAULTS = Object.freeze({ target: 0.85, limit: 0.98 });

const OPTIONS = ['target', 'limit', 'onFailure', 'read'] as const;

/** Event-loop utilisation of each sampling interval, a ratio from 0 to 1. Unit `ratio`. */
export function eventLoopUtilization(options?: EventLoopUtilizationOptions): Signal {
  const o = optionsObject('eventLoopUtilization', options);
  knownKeys('eventLoopUtilization', o, OPTIONS);
  const d = EVENT_LOOP_UTILIZATION_DEFAULTS;
  const { target, limit } = targetAndLimit('target', o.target ?? d.target, 'limit', o.limit ?? d.limit, 0, 1);
  const onFailure = failureMode('onFailure', o.onFailure, 'ignore');
  const read: EluReader =
    o.read === undefined ? (a, b) => performance.eventLoopUtilization(a, b) : fn<EluReader>('read', o.read);

  let previous: EventLoopUtilization | undefined;
  let lastValue = 0;

  const signal: Signal = {
    name: 'event-loop-utilization',
    unit: 'ratio',
    target,
    limit,
    onFailure,
    start() {
      if (previous !== undefined) return;
      previous = read();
      lastValue = 0;
    },
    stop() {
      previous = undefined;
    },
    sample(): number {
      if (previous === undefined) signal.start!();
      // One cumulative reading, and the delta against the previous one: no time falls between.
      const now = read();
      const delta = read(now, previous);
      const total = delta.idle + delta.active;
      // No time passed (two samples in one instant): nothing measured, keep the last reading.
      if (!(total > 0)) return lastValue;
      previous = now;
      lastValue = Math.min(1, Math.max(0, delta.active / total));
      return lastValue;
    },
  };
  return signal;
}
