/**
 * How late the event loop runs what is due, as a source the adaptive concurrency limit reads once
 * per window of samples (src/limiters/concurrency/vegas.ts): a stalled loop (a CPU-hungry neighbour,
 * a long synchronous turn, a GC pause) delays every callback that becomes due meanwhile, and so
 * lengthens every hold time measured across it, whatever the downstream does.
 *
 * The system source reads `perf_hooks.monitorEventLoopDelay` (resolution 10 ms). Its histogram
 * records the intervals `x` between its timer's runs, each `ℓ = x − resolution` late. A callback
 * that becomes due at a random moment of an interval of length `W` waits for the end of the stall
 * it falls in, so its mean wait is the time-weighted one:
 *
 *   delay = Σ ℓ² / (2 · W) = n · (σ² + (μ − resolution)²) / (2 · W)
 *
 * with `n`, `μ` and `σ` the histogram's count, mean and standard deviation since the previous read
 * (a stall of 40 ms in 200 ms: 40² / 400 = 4 ms; an idle loop reads ~0.04 ms). An interval with no
 * timer run at all (the loop was blocked throughout) counts as one stall of `W − resolution`.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { DelayHistogram } from './signals/event-loop-delay.js';

/** Where the adaptive limit learns how late the loop runs. */
export interface LoopDelaySource {
  /**
   * The mean time a callback that became due since the previous call waited for the event loop,
   * in ms (0 when the loop kept up). Each call starts a new interval.
   */
  readMs(): number;
}

/** The system source, which owns a histogram: `close()` disables it. */
export interface ClosableLoopDelay extends LoopDelaySource {
  close(): void;
}

const NS_PER_MS = 1e6;
/** The system source's histogram resolution, in ms. */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/**
 * The process's own event-loop delay, from `monitorEventLoopDelay` (its timer does not keep the
 * process alive). `now` and `createHistogram` are for tests.
 */
export function systemLoopDelay(
  options: {
    resolutionMs?: number;
    now?: () => number;
    createHistogram?: (resolutionMs: number) => DelayHistogram & { readonly mean: number; readonly stddev: number };
  } = {},
): ClosableLoopDelay {
  const resolutionMs = options.resolutionMs ?? LOOP_DELAY_RESOLUTION_MS;
  const now = options.now ?? (() => performance.now());
  const histogram = (options.createHistogram ?? ((r) => monitorEventLoopDelay({ resolution: r })))(resolutionMs);
  histogram.enable();
  let last = now();
  let closed = false;
  return {
    readMs() {
      if (closed) return 0;
      const t = now();
      const w = t - last;
      last = t;
      if (!(w > 0)) return 0;
      const n = histogram.count;
      let sumSquares: number;
      if (n > 0) {
        const late = histogram.mean / NS_PER_MS - resolutionMs;
        const sd = histogram.stddev / NS_PER_MS;
        sumSquares = n * (sd * sd + Math.max(0, late) ** 2);
      } else {
        const stall = Math.max(0, w - resolutionMs);
        sumSquares = stall * stall;
      }
      histogram.reset();
      const delay = sumSquares / (2 * w);
      return Number.isFinite(delay) ? delay : 0;
    },
    close() {
      if (closed) return;
      closed = true;
      histogram.disable();
    },
  };
}
