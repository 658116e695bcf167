import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import {
  VEGAS_DEFAULTS,
  VegasEstimator,
  vegasLambda,
  vegasStep,
} from '../../../src/limiters/concurrency/vegas.js';
import { advance, runPool } from './pool-model.js';

describe('Vegas step', () => {
  it('λ is max(1, ⌊log10 L⌋)', () => {
    expect([1, 9, 10, 99, 100, 1000].map(vegasLambda)).toEqual([1, 1, 1, 1, 2, 3]);
  });

  it('grows fast when nothing queues, slowly below α, holds between α and β, shrinks above β or on a drop', () => {
    // L = 10, rtt₀ = 20: queue = ⌈10 · (1 − 20 / rtt)⌉
    expect(vegasStep(10, 20, 20, 10, false)).toBe(16); // queue 0 ≤ 1: + β (6)
    expect(vegasStep(10, 25, 20, 10, false)).toBe(11); // queue 2 < α (3): + λ
    expect(vegasStep(10, 40, 20, 10, false)).toBe(10); // queue 5: α..β
    expect(vegasStep(10, 100, 20, 10, false)).toBe(9); // queue 8 > β: − λ
    expect(vegasStep(10, 20, 20, 10, true)).toBe(9); // a drop: − λ
    expect(vegasStep(10, 20, 20, 4, false)).toBe(10); // 4 · 2 < 10: not in use, no drift
  });

  it('updates once per window of windowMs and minSamples', () => {
    const v = new VegasEstimator({ ...VEGAS_DEFAULTS, initialLimit: 10 }, 0);
    for (let i = 0; i < 9; i++) expect(v.sample(200, 20, 100, false, 10)).toBe(false);
    v.inFlight(10);
    expect(v.sample(200, 20, 100, false, 10)).toBe(true);
    expect(v.limit).toBe(16);
    expect(v.rttNoLoadMs).toBe(20);
  });

  it('probes rtt₀ again at half the limit every probeIntervalMs while the limit is in use', () => {
    const v = new VegasEstimator({ ...VEGAS_DEFAULTS, initialLimit: 40, probeIntervalMs: 1000 }, 0);
    let t = 0;
    const window = (rtt: number) => {
      t += 100;
      v.inFlight(40);
      for (let i = 0; i < 10; i++) v.sample(t, rtt, t - rtt, false, 40);
    };
    window(20);
    expect(v.rttNoLoadMs).toBe(20);
    // The downstream becomes slower for good: 40 ms unloaded. rtt₀ is stale and the limit shrinks.
    for (let i = 0; i < 9; i++) window(40);
    expect(v.probing).toBe(true);
    // 40 + β after the first window (nothing queued), then 9 windows of −λ, halved while probing.
    expect(v.limit).toBe(Math.floor((46 - 9) / 2));
    // Units admitted before the probe do not count; those admitted during it set rtt₀.
    t += 100;
    for (let i = 0; i < 10; i++) v.sample(t, 30, t - 200, false, 18);
    expect(v.probing).toBe(true);
    for (let i = 0; i < 10; i++) v.sample(t, 40, t - 40, false, 18);
    expect(v.probing).toBe(false);
    expect(v.rttNoLoadMs).toBe(40);
  });
});

describe('adaptive limit in front of a pool', () => {
  it('learns a limit a little above the pool size at 3x overload, keeping the pool busy', async () => {
    const clock = new ManualClock();
    const l = new ConcurrencyLimiter({ clock, maxWaitMs: 1000 });
    // 8 slots × 20 ms = 400/s; arrivals every 0.833 ms = 1200/s.
    const stats = runPool(l, clock, { slots: 8, holdMs: 20, segments: [{ ms: 5000, perSec: 1200 }] });
    const limitsSeen: number[] = [];
    l.on('limit', (e) => limitsSeen.push(e.limit));
    const completedBefore = stats.completed;
    await advance(clock, 2000);
    const served = stats.completed - completedBefore;
    // The pool serves 400/s: at least 95% of that in the last 2 s.
    expect(served).toBeGreaterThanOrEqual(0.95 * 800);
    expect(l.limit).toBeGreaterThanOrEqual(8);
    expect(l.limit).toBeLessThanOrEqual(20);
    expect(l.snapshot().rttNoLoadMs).toBe(20);
    // Bounded latency: nothing admitted waited long (CoDel), and the pool queue stays short.
    expect(stats.maxLatencyMs).toBeLessThan(150);
    l.close();
  });
});
