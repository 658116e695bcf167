import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Governor } from '../../src/governor/governor.js';
import { isConfigError, signals } from '../../src/index.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { refusalShare } from '../../src/signals/refusal-share.js';

describe('refusalShare', () => {
  it('reads the share refused over the sliding window, and forgets it after the window', () => {
    const clock = new ManualClock();
    const s = refusalShare({ clock, windowMs: 1000, minOffered: 10 });
    expect(s.name).toBe('refusal-share');
    expect(s.unit).toBe('ratio');
    for (let i = 0; i < 100; i++) {
      clock.advance(5);
      s.record(i % 4 === 0 ? 'refused' : 'admitted');
    }
    expect(s.counts()).toEqual({ admitted: 75, refused: 25 });
    expect(s.sample(clock.now())).toBeCloseTo(0.25, 10);
    // Admissions only from now: the refusals age out of the 1 s window slot by slot.
    for (let i = 0; i < 100; i++) {
      clock.advance(10);
      s.record('admitted');
    }
    expect(s.counts().refused).toBe(0);
    expect(s.sample(clock.now())).toBe(0);
  });

  it('reads 0 with fewer than minOffered requests in the window (no evidence), and counts in bulk', () => {
    const clock = new ManualClock();
    const s = refusalShare({ clock, minOffered: 20 });
    s.record('refused', 19);
    expect(s.sample(clock.now())).toBe(0);
    s.record('admitted');
    expect(s.sample(clock.now())).toBeCloseTo(0.95, 10);
  });

  it('is in the signals namespace and validates its options and its input', () => {
    expect(signals.refusalShare).toBe(refusalShare);
    expect(() => refusalShare({ target: 0.5, limit: 0.4 })).toThrow(/`limit`/);
    expect(() => refusalShare({ limit: 2 })).toThrow(/`limit`/);
    expect(() => refusalShare({ windowMs: 10 })).toThrow(/`windowMs`/);
    expect(() => refusalShare({ minOffered: 0.5 })).toThrow(/`minOffered`/);
    expect(() => refusalShare({ name: 'has space' })).toThrow(/`name`/);
    expect(() => refusalShare({ bogus: 1 } as never)).toThrow(/bogus/);
    const s = refusalShare({ clock: new ManualClock() });
    expect(() => s.record('maybe' as never)).toThrow(/`outcome`/);
    try {
      s.record('refused', -1);
      expect.unreachable();
    } catch (e) {
      expect(isConfigError(e)).toBe(true);
    }
  });

  it('drives a governor: sustained refusals cut the factor and shrink a keyed quota; when they stop the factor returns', () => {
    const clock = new ManualClock();
    const share = refusalShare({ clock });
    const governor = new Governor({ signals: [share], clock, warmupMs: 0 });
    const perKey = createLimiter({ ratePerSec: 100, burst: 100, factor: governor, clock });
    governor.start();
    // A fast stage refuses 40% of 1,000 req/s for 10 s.
    let refusing = true;
    let lowest = 1;
    for (let t = 0; t < 20_000; t += 10) {
      clock.advance(10);
      for (let i = 0; i < 10; i++) share.record(refusing && i < 4 ? 'refused' : 'admitted');
      if (t === 10_000) {
        lowest = governor.factor;
        expect(lowest).toBeLessThan(1);
        expect(lowest).toBeGreaterThan(governor.options.floor);
        // The key's quota shrinks with the factor.
        const d = perKey.take('heavy', { cost: 1 });
        expect(d.limit).toBeLessThan(100);
        refusing = false;
      }
    }
    expect(governor.factor).toBeGreaterThan(lowest);
    governor.stop();
    perKey.close();
  });
});
