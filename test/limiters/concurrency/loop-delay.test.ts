/**
 * The adaptive limit and a stalled event loop (issue 9: under a load average near 9 the learned
 * limit fell to 3 in front of a pool of 8). A stall lengthens every hold time measured across it,
 * and that is not queueing downstream. On ManualClock: the pool model with a loop that stalls for
 * the first `stallMs` of every `periodMs` (every callback due meanwhile runs when it ends), and an
 * injected loop-delay source that reports the mean wait of a callback, `stallMs² / (2 · periodMs)`.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { ConfigError } from '../../../src/errors.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import {
  VEGAS_DEFAULTS,
  VegasEstimator,
  vegasStep,
  vegasStepWithLag,
} from '../../../src/limiters/concurrency/vegas.js';
import { systemLoopDelay } from '../../../src/loop-delay.js';
import { advance, runPool } from './pool-model.js';

describe('Vegas step with the loop delay', () => {
  it('the loop delay only stops a cut: min(step(max(rtt0, rtt - lag)), max(L, step(rtt)))', () => {
    // L = 10, rtt₀ = 20. rtt 100: queue 8 > β, a cut.
    expect(vegasStep(10, 100, 20, 10, false)).toBe(9);
    // 78 ms of it is the loop: rtt' = 22, queue 1: the raw step cuts, the discounted one grows: hold.
    expect(vegasStepWithLag(10, 100, 20, 78, 10, false)).toBe(10);
    // 30 ms of it is the loop: rtt' = 70, queue 8: still a cut.
    expect(vegasStepWithLag(10, 100, 20, 30, 10, false)).toBe(9);
    // Growth is the raw step's: the delay never adds any.
    expect(vegasStepWithLag(10, 25, 20, 5, 10, false)).toBe(vegasStep(10, 25, 20, 10, false));
    expect(vegasStepWithLag(10, 20, 20, 50, 10, false)).toBe(16);
    // A drop cuts either way; no delay, no change.
    expect(vegasStepWithLag(10, 20, 20, 50, 10, true)).toBe(9);
    expect(vegasStepWithLag(10, 100, 20, 0, 10, false)).toBe(9);
  });

  it('reads the source once per window and reports it', () => {
    let reads = 0;
    const v = new VegasEstimator({ ...VEGAS_DEFAULTS, initialLimit: 10 }, 0, {
      readMs: () => {
        reads++;
        return 78;
      },
    });
    v.inFlight(10);
    for (let i = 0; i < 10; i++) v.sample(200, i === 0 ? 20 : 100, 100, false, 10);
    expect(reads).toBe(1);
    expect(v.loopDelayMs).toBe(78);
    // Without the delay this window (mean 92 ms, rtt₀ 20) would cut to 9.
    expect(v.limit).toBe(10);
  });
});

describe('adaptive limit in front of a downstream, the loop stalling', () => {
  // The loop runs for ~40 ms, then stalls for ~60 ms (exponential, seeded): a callback due at a
  // random moment waits 60² / 100 = 36 ms on average. The downstream (8 slots, 20 ms) keeps its own
  // slots and frees them on time (a remote service): only its answers wait for the loop. The
  // source reads the loop's delay over each window exactly (pool-model.ts, `loopDelay`).
  const stalls = { meanRunMs: 40, meanStallMs: 60, holdSlots: false };

  const run = async (withDelay: boolean) => {
    const clock = new ManualClock();
    let source: { readMs(): number } | undefined;
    const l = new ConcurrencyLimiter({
      clock,
      maxWaitMs: 1000,
      // No ProbeRTT window in these 15 s: it halves the limit on purpose, for a window.
      adaptive: { probeIntervalMs: 60_000, loopDelay: withDelay ? { readMs: () => source!.readMs() } : false },
    });
    // 0.5x, 3x, 0.5x of the downstream's 400/s, 5 s each.
    const segments = [
      { ms: 5000, perSec: 200 },
      { ms: 5000, perSec: 1200 },
      { ms: 5000, perSec: 200 },
    ];
    const stats = runPool(l, clock, { slots: 8, holdMs: 20, segments, stalls });
    source = stats.loopDelay;
    await advance(clock, 5000);
    let lowest = l.limit;
    const onLimit = (e: { limit: number }) => {
      lowest = Math.min(lowest, e.limit);
    };
    l.on('limit', onLimit);
    const before = stats.completed;
    await advance(clock, 5000);
    l.off('limit', onLimit);
    const served = stats.completed - before;
    await advance(clock, 5000);
    l.close();
    return { lowest, served };
  };

  it('without the discount the stalls read as queueing: the limit falls below the 8 slots; with it, it does not, and more is served', async () => {
    const without = await run(false);
    const withDelay = await run(true);
    expect(without.lowest).toBeLessThan(8);
    expect(withDelay.lowest).toBeGreaterThanOrEqual(8);
    expect(withDelay.served).toBeGreaterThan(without.served);
  });

  it('adaptive.loopDelay: false or a source; anything else is a ConfigError naming it', () => {
    const clock = new ManualClock();
    expect(() => new ConcurrencyLimiter({ clock, adaptive: { loopDelay: 5 as never } })).toThrow(ConfigError);
    expect(() => new ConcurrencyLimiter({ clock, adaptive: { loopDelay: 5 as never } })).toThrow(
      /adaptive\.loopDelay/,
    );
    new ConcurrencyLimiter({ clock, adaptive: { loopDelay: false } }).close();
  });
});

describe('systemLoopDelay', () => {
  const fake = () => {
    const h = {
      count: 0,
      mean: 0,
      stddev: 0,
      max: 0,
      enabled: false,
      enable() {
        h.enabled = true;
      },
      disable() {
        h.enabled = false;
      },
      reset() {
        h.count = 0;
        h.mean = 0;
        h.stddev = 0;
      },
      percentile: () => 0,
    };
    return h;
  };

  it('is the time-weighted mean wait: n · (σ² + (μ − resolution)²) / (2 · W), in ms', () => {
    const h = fake();
    let t = 0;
    const src = systemLoopDelay({ resolutionMs: 10, now: () => t, createHistogram: () => h });
    expect(h.enabled).toBe(true);
    // 200 ms: 4 intervals of 10 ms (on time) and one of 50 ms (40 ms late): mean 18, σ 16.
    t = 200;
    h.count = 5;
    h.mean = 18e6;
    h.stddev = 16e6;
    // Σℓ² = 5 · (16² + 8²) = 1600 = 40²; / (2 · 200) = 4 ms.
    expect(src.readMs()).toBeCloseTo(4, 9);
    // The histogram was reset: the next interval starts empty. 100 ms with no timer run at all is
    // one stall of 90 ms: 90² / 200.
    t = 300;
    expect(src.readMs()).toBeCloseTo(40.5, 9);
    src.close();
    expect(h.enabled).toBe(false);
    expect(src.readMs()).toBe(0);
  });
});
