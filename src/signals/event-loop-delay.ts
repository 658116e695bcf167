/**
 * Event-loop delay: how late the loop runs what is due, from `perf_hooks.monitorEventLoopDelay`.
 * The histogram records the whole interval between its timer's runs; the reading is the lateness,
 * that interval minus `resolutionMs`, so an idle process reads ~0 ms.
 *
 * Each sample reports one percentile of the delays recorded since the previous sample (in ms) and
 * resets the histogram, so a reading describes one interval, not the process's life.
 *
 * A loop that is blocked records nothing: the histogram's own timer cannot fire, and a sample that
 * runs right after the block often runs before that timer, then resets the histogram and the block
 * is lost. Two lower bounds cover this, and the reading is the largest of the three:
 * - an empty histogram (count 0) after `elapsed` ms means the timer, due every `resolutionMs`, could
 *   not run for at least `elapsed − resolutionMs` (one more resolution right after start, where
 *   Node skips the first delay);
 * - a sample that comes `elapsed` ms after the previous one, when samples are expected every
 *   `intervalMs`, was itself delayed by `elapsed − intervalMs`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type Clock, systemClock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { clockOption, integer, knownKeys, positiveNumber } from '../validate.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

/** The part of Node's `IntervalHistogram` this signal uses (values in nanoseconds). */
export interface DelayHistogram {
  enable(): unknown;
  disable(): unknown;
  reset(): void;
  percentile(p: number): number;
  readonly max: number;
  readonly count: number;
}

export interface EventLoopDelayOptions {
  /** Lateness where pressure starts, in ms. @default 20 */
  targetMs?: number;
  /** Lateness where pressure reaches 1, in ms. Greater than `targetMs`. @default 200 */
  limitMs?: number;
  /** Which delay of each interval to report: a percentile from 0 (exclusive) to 100, or `'max'`. @default 99 */
  percentile?: number | 'max';
  /** How often the histogram's timer samples the loop, in ms (an integer >= 1). @default 50 */
  resolutionMs?: number;
  /**
   * How often the governor samples, in ms. A sample later than this by `d` ms reports at least `d`.
   * When omitted it is learned as the median gap between the last 16 samples.
   * @default undefined (learned)
   */
  intervalMs?: number;
  /** The clock that times `start()`; pass the governor's clock. @default systemClock */
  clock?: Clock;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
  /** Creates the histogram (tests inject a fake). @default perf_hooks.monitorEventLoopDelay */
  createHistogram?: (resolutionMs: number) => DelayHistogram;
}

export const EVENT_LOOP_DELAY_DEFAULTS = Object.freeze({
  targetMs: 20,
  limitMs: 200,
  percentile: 99 as number | 'max',
  resolutionMs: 50,
});

const OPTIONS = [
  'targetMs',
  'limitMs',
  'percentile',
  'resolutionMs',
  'intervalMs',
  'clock',
  'onFailure',
  'createHistogram',
] as const;

const GAP_WINDOW = 16;
const NS_PER_MS = 1e6;

const nodeHistogram = (resolutionMs: number): DelayHistogram =>
  monitorEventLoopDelay({ resolution: resolutionMs });

/** Event-loop delay in ms (a percentile of each sampling interval). Unit `ms`. */
export function eventLoopDelay(options?: EventLoopDelayOptions): Signal {
  const o = optionsObject('eventLoopDelay', options);
  knownKeys('eventLoopDelay', o, OPTIONS);
  const d = EVENT_LOOP_DELAY_DEFAULTS;
  const { target, limit } = targetAndLimit(
    'targetMs',
    o.targetMs ?? d.targetMs,
    'limitMs',
    o.limitMs ?? d.limitMs,
    0,
  );
  const pct = o.percentile ?? d.percentile;
  if (pct !== 'max') positiveNumber('percentile', pct, 0, 100);
  if (typeof pct !== 'number' && pct !== 'max') {
    throw new ConfigError('percentile', pct, "a number > 0 and <= 100, or 'max'");
  }
  const resolutionMs = integer('resolutionMs', o.resolutionMs ?? d.resolutionMs, 1, 60_000);
  const fixedInterval = o.intervalMs === undefined ? undefined : positiveNumber('intervalMs', o.intervalMs);
  const clock = clockOption('clock', o.clock, systemClock, false);
  const create = o.createHistogram ?? nodeHistogram;
  const onFailure = failureMode('onFailure', o.onFailure, 'ignore');

  let histogram: DelayHistogram | undefined;
  let started = false;
  let firstSample = true;
  let lastMs = 0;
  let lastValue = 0;
  const gaps: number[] = [];
  let gapIndex = 0;

  const learnedInterval = (): number | undefined => {
    if (gaps.length === 0) return undefined;
    const sorted = gaps.slice().sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };

  const signal: Signal = {
    name: 'event-loop-delay',
    unit: 'ms',
    target,
    limit,
    onFailure,
    start() {
      if (started) return;
      started = true;
      firstSample = true;
      gaps.length = 0;
      gapIndex = 0;
      lastValue = 0;
      lastMs = clock.now();
      try {
        histogram = create(resolutionMs);
        histogram.enable();
      } catch {
        // No histogram in this runtime: the gap between samples is still a lower bound.
        histogram = undefined;
      }
    },
    stop() {
      if (!started) return;
      started = false;
      histogram?.disable();
      histogram = undefined;
    },
    sample(nowMs: number): number {
      if (!started) signal.start!();
      const elapsed = nowMs - lastMs;
      // Two samples at the same instant: nothing new was measured; keep the histogram's data.
      if (!(elapsed > 0)) return lastValue;
      lastMs = nowMs;

      let value = 0;
      if (histogram !== undefined) {
        const count = histogram.count;
        if (count > 0) {
          // Node records the whole interval between its timer's runs, resolution included: an idle
          // loop records `resolutionMs`. The lateness is what lies beyond it.
          const ns = pct === 'max' ? histogram.max : histogram.percentile(pct);
          if (Number.isFinite(ns)) value = ns / NS_PER_MS - resolutionMs;
        } else {
          value = elapsed - (firstSample ? 2 : 1) * resolutionMs;
        }
        histogram.reset();
      }

      const expected = fixedInterval ?? learnedInterval();
      if (expected !== undefined) value = Math.max(value, elapsed - expected);
      // The first gap runs from start(), not from a tick: it says nothing about the interval.
      if (fixedInterval === undefined && !firstSample) {
        if (gaps.length < GAP_WINDOW) gaps.push(elapsed);
        else gaps[gapIndex] = elapsed;
        gapIndex = (gapIndex + 1) % GAP_WINDOW;
      }
      firstSample = false;
      lastValue = Math.max(0, value);
      return lastValue;
    },
  };
  return signal;
}
