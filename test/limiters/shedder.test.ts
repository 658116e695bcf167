import { describe, expect, it } from 'vitest';
import { isConfigError, ManualClock, ManualFactor } from '../../src/index.js';
import { Shedder } from '../../src/limiters/shedder.js';

/** Offers `perSec` requests a second, evenly spaced, for `ms`; returns how many were admitted. */
function offer(
  clock: ManualClock,
  shedder: Shedder,
  perSec: number,
  ms: number,
  priority?: 'critical' | 'sheddable',
) {
  const gap = 1000 / perSec;
  let admitted = 0;
  let offered = 0;
  for (let t = 0; t < ms; t += gap) {
    clock.advance(gap);
    offered++;
    if (shedder.admit(priority ? { priority } : undefined).allowed) admitted++;
  }
  return { admitted, offered };
}

describe('Shedder', () => {
  it('admits everything at factor 1 and learns the admitted rate', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const shedder = new Shedder({ factor, clock });
    const { admitted, offered } = offer(clock, shedder, 200, 10_000);
    expect(admitted).toBe(offered);
    const state = shedder.state;
    expect(state.mode).toBe('learning');
    if (state.mode === 'learning') expect(state.learnedRatePerSec).toBeCloseTo(200, -1);
  });

  it('limits to the learned rate times the factor once the governor cuts', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const shedder = new Shedder({ factor, clock });
    offer(clock, shedder, 400, 10_000);
    factor.set(0.5);
    const state = shedder.state;
    expect(state.mode).toBe('limiting');
    if (state.mode === 'limiting') {
      expect(state.baseRatePerSec).toBeCloseTo(400, -1);
      expect(state.limitPerSec).toBeCloseTo(200, -1);
    }
    // Over 10 s at 400/s offered, about 200/s get in: the rate plus at most one burst (250 ms worth).
    const { admitted } = offer(clock, shedder, 400, 10_000);
    expect(admitted).toBeGreaterThanOrEqual(2000 - 1);
    expect(admitted).toBeLessThanOrEqual(2000 + 50 + 1);
  });

  it('refuses with reason shed and an exact retryAfterMs', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const shedder = new Shedder({ factor, clock, ratePerSec: 10, burstMs: 100 });
    // A known capacity is enforced even at factor 1: burst = 1 token.
    expect(shedder.admit().allowed).toBe(true);
    const refused = shedder.admit();
    expect(refused).toMatchObject({ allowed: false, reason: 'shed' });
    clock.advance(refused.retryAfterMs - 1);
    expect(shedder.admit().allowed).toBe(false);
    clock.advance(1);
    expect(shedder.admit().allowed).toBe(true);
  });

  it('sheds sheddable work first and keeps a reserve for critical work', () => {
    const run = (priority: 'critical' | 'sheddable' | undefined) => {
      const clock = new ManualClock();
      const factor = new ManualFactor(1);
      const shedder = new Shedder({ factor, clock, ratePerSec: 100 });
      factor.set(0.25);
      return offer(clock, shedder, 100, 20_000, priority).admitted / 20;
    };
    const sheddable = run('sheddable');
    const normal = run(undefined);
    const critical = run('critical');
    // Alone, a class is admitted at rate·e_p (sheddable 100·0.0625, normal 100·0.25, critical
    // 100·0.5), plus the opening burst: 6.25 tokens, spent at f/e_p tokens a request, over 20 s.
    const burst = (tokensPerRequest: number) => 6.25 / tokensPerRequest / 20;
    expect(sheddable).toBeGreaterThanOrEqual(6.25 - 0.05);
    expect(sheddable).toBeLessThanOrEqual(6.25 + burst(4) + 0.05);
    expect(normal).toBeGreaterThanOrEqual(25 - 0.05);
    expect(normal).toBeLessThanOrEqual(25 + burst(1) + 0.05);
    expect(critical).toBeGreaterThanOrEqual(50 - 0.05);
    expect(critical).toBeLessThanOrEqual(50 + burst(0.5) + 0.05);
  });

  it('keeps the limit at factor 1 while it still refuses, and lifts it after a quiet spell', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const shedder = new Shedder({ factor, clock, releaseAfterMs: 5000 });
    offer(clock, shedder, 100, 5000);
    factor.set(0.5);
    offer(clock, shedder, 300, 2000);
    factor.set(1);
    // Still offered 300/s against a base of ~100/s: the limit stays (no flap back to admitting all).
    const during = offer(clock, shedder, 300, 2000);
    expect(during.admitted).toBeLessThan(during.offered * 0.6);
    expect(shedder.state.mode).toBe('limiting');
    // Offered load falls well below the base: no refusals for releaseAfterMs, then learning again.
    offer(clock, shedder, 20, 6000);
    offer(clock, shedder, 20, 1000);
    expect(shedder.state.mode).toBe('learning');
  });

  it('probes upwards while refusing at factor 1, so an underestimated base grows', () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const shedder = new Shedder({ factor, clock, probePerSec: 0.1 });
    offer(clock, shedder, 100, 5000);
    factor.set(0.9);
    offer(clock, shedder, 400, 1000);
    factor.set(1);
    offer(clock, shedder, 400, 5000);
    const state = shedder.state;
    expect(state.mode).toBe('limiting');
    // 10% a second, compounding, over about 5 s: 100 · 1.1^5 ≈ 161.
    if (state.mode === 'limiting') {
      expect(state.baseRatePerSec).toBeGreaterThan(150);
      expect(state.baseRatePerSec).toBeLessThan(175);
    }
  });

  it('validates its options and stops following the factor on close', () => {
    const factor = new ManualFactor(1);
    expect(() => new Shedder({ factor, burstMs: -1 })).toThrow(/`burstMs`.*got `-1`/);
    expect(() => new Shedder({ factor: {} as never })).toThrow(/`factor`/);
    try {
      new Shedder({ factor, ratePerSec: Number.NaN });
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
    }
    const clock = new ManualClock();
    const shedder = new Shedder({ factor, clock });
    shedder.close();
    factor.set(0.1);
    expect(shedder.state.mode).toBe('learning');
    expect(shedder.admit().allowed).toBe(true);
  });
});
