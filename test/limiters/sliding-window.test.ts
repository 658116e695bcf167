import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { FixedWindow } from '../../src/limiters/fixed-window.js';
import { SlidingWindowCounter, SlidingWindowLog } from '../../src/limiters/sliding-window.js';
import type { RateAlgorithm } from '../../src/limiters/types.js';

type Ctor = typeof SlidingWindowCounter | typeof SlidingWindowLog | typeof FixedWindow;

function make<C extends Ctor>(C: C, limit: number, windowMs: number, start = 0, factor = 1) {
  const clock = new ManualClock(start);
  return { clock, l: new C({ limit, windowMs, clock, factor }) as InstanceType<C> };
}

function drain(l: RateAlgorithm, cost = 1): number {
  let n = 0;
  while (l.take(cost).allowed) n++;
  return n;
}

/** Asserts that the refusal's retryAfterMs is exact: refused 1 ms before, admitted at it. */
function expectExact(clock: ManualClock, l: RateAlgorithm, cost: number) {
  const d = l.peek(cost);
  expect(d.allowed).toBe(false);
  const t0 = clock.now();
  if (d.retryAfterMs > 1) {
    clock.set(t0 + d.retryAfterMs - 1);
    expect(l.peek(cost).allowed).toBe(false);
  }
  clock.set(t0 + d.retryAfterMs);
  expect(l.take(cost).allowed).toBe(true);
  return d.retryAfterMs;
}

describe('SlidingWindowCounter', () => {
  it('weights the previous window by the part of it still inside the sliding window', () => {
    const { clock, l } = make(SlidingWindowCounter, 10, 1000);
    expect(drain(l)).toBe(10);
    clock.set(1250); // estimate = 10·(1 − 250/1000) = 7.5
    expect(l.estimate).toBeCloseTo(7.5, 12);
    expect(l.take(2)).toMatchObject({ allowed: true, remaining: 0.5 });
    const d = l.take(1);
    expect(d).toMatchObject({ allowed: false, reason: 'limited' });
    // 10·(1 − e/1000) + 2 + 1 <= 10  ⇔  e >= 300
    expect(d.retryAfterMs).toBeCloseTo(50, 9);
    expect(expectExact(clock, l, 1)).toBeCloseTo(50, 9);
  });

  it('waits into the next window when the current one alone is over', () => {
    const { clock, l } = make(SlidingWindowCounter, 10, 1000, 1000);
    expect(drain(l)).toBe(10);
    // Next window: 10·(1 − e/1000) + 1 <= 10  ⇔  e >= 100, so 1000 + 100 ms from now.
    expect(l.peek(1).retryAfterMs).toBeCloseTo(1100, 9);
    expect(expectExact(clock, l, 1)).toBeCloseTo(1100, 9);
    expect(l.peek(1).resetMs).toBeCloseTo(1900, 9); // the end of the window after this one
  });

  it('retryAfterMs is exact for awkward limits, windows and costs', () => {
    for (const [limit, windowMs, cost, start] of [
      [3, 700, 0.7, 123.4],
      [7.5, 333.3, 2.2, 1e6 + 0.1],
      [1, 1, 0.3, 5],
      [100, 60_000, 13, 59_999],
    ] as const) {
      const { clock, l } = make(SlidingWindowCounter, limit, windowMs, start);
      drain(l, cost);
      for (let i = 0; i < 6; i++) {
        expectExact(clock, l, cost);
        drain(l, cost);
      }
    }
  });

  it('bounds the edge burst near limit (the fixed window admits 2·limit)', () => {
    const fixed = make(FixedWindow, 10, 1000, 999);
    const counter = make(SlidingWindowCounter, 10, 1000, 999);
    let f = drain(fixed.l);
    let c = drain(counter.l);
    fixed.clock.set(1001);
    counter.clock.set(1001);
    f += drain(fixed.l);
    c += drain(counter.l);
    expect(f).toBe(20);
    expect(c).toBe(10); // 10·(1 − 1/1000) + 1 > 10
  });

  it('differs from the exact log both ways, within limit·Δ/windowMs', () => {
    // Previous window's traffic early: the counter still counts half of it, the log none.
    const early = make(SlidingWindowCounter, 10, 1000, 0);
    const earlyLog = make(SlidingWindowLog, 10, 1000, 0);
    drain(early.l);
    drain(earlyLog.l);
    early.clock.set(1500);
    earlyLog.clock.set(1500);
    expect(drain(early.l)).toBe(5);
    expect(drain(earlyLog.l)).toBe(10);
    // Previous window's traffic late: the log still counts all of it, the counter half.
    const late = make(SlidingWindowCounter, 10, 1000, 999);
    const lateLog = make(SlidingWindowLog, 10, 1000, 999);
    drain(late.l);
    drain(lateLog.l);
    late.clock.set(1500);
    lateLog.clock.set(1500);
    expect(drain(late.l)).toBe(5); // 15 within (500, 1500]: limit·(1 + 501/1000) bounds it
    expect(drain(lateLog.l)).toBe(0);
  });

  it('scales the limit by the factor; factor 0 refuses with Infinity and reason shed', () => {
    const { clock, l } = make(SlidingWindowCounter, 10, 1000, 0, 0.5);
    expect(drain(l)).toBe(5);
    expect(l.take()).toMatchObject({ allowed: false, reason: 'shed', limit: 5 });
    clock.set(1000);
    l.setFactor(1);
    expect(drain(l)).toBe(5); // estimate 5·1 + 5 = 10
    expect(l.take()).toMatchObject({ allowed: false, reason: 'limited' }); // over at f = 1 too
    l.setFactor(0); // only the factor stands in the way now: shed
    expect(l.take()).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity, limit: 0 });
    clock.set(5000);
    expect(l.take()).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity, limit: 0 });
  });

  it('property: within any interval of Δ <= windowMs, admits at most limit·f·(1 + Δ/windowMs); retryAfterMs exact', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 10, max: 5000 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.array(
          fc.record({ dtMs: fc.integer({ min: 0, max: 3000 }), cost: fc.integer({ min: 1, max: 5 }) }),
          { maxLength: 80 },
        ),
        (limit, windowMs, factor, ops) => {
          const { clock, l } = make(SlidingWindowCounter, limit, windowMs, 0, factor);
          const cap = limit * factor;
          const admitted: Array<[number, number]> = [];
          for (const op of ops) {
            clock.advance(op.dtMs);
            const cost = Math.min(op.cost, limit);
            // The test's own estimate, from what the counter admitted in this window and the last.
            const now = clock.now();
            const k = Math.floor(now / windowMs);
            const inWindow = (j: number) =>
              admitted.filter(([t]) => Math.floor(t / windowMs) === j).reduce((s, [, c]) => s + c, 0);
            const estimate = inWindow(k - 1) * (1 - (now - k * windowMs) / windowMs) + inWindow(k);
            const d = l.take(cost);
            if (estimate + cost <= cap - 1e-6) expect(d.allowed).toBe(true);
            if (estimate + cost > cap + 1e-6) expect(d.allowed).toBe(false);
            if (d.allowed) admitted.push([now, cost]);
            else if (Number.isFinite(d.retryAfterMs)) {
              clock.set(now + d.retryAfterMs);
              expect(l.peek(cost).allowed).toBe(true);
            } else expect(cost).toBeGreaterThan(cap);
          }
          for (let i = 0; i < admitted.length; i++) {
            let sum = 0;
            for (let j = i; j < admitted.length && admitted[j]![0] - admitted[i]![0] <= windowMs; j++) {
              sum += admitted[j]![1];
              const span = admitted[j]![0] - admitted[i]![0];
              expect(sum).toBeLessThanOrEqual(cap * (1 + span / windowMs) + 1e-6);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('SlidingWindowLog', () => {
  it('counts exactly the admissions in (now − windowMs, now]', () => {
    const { clock, l } = make(SlidingWindowLog, 3, 1000);
    l.take();
    clock.set(400);
    l.take();
    clock.set(700);
    l.take();
    const d = l.take();
    expect(d).toMatchObject({ allowed: false, reason: 'limited', retryAfterMs: 300, resetMs: 1000 });
    clock.set(999);
    expect(l.take().allowed).toBe(false);
    clock.set(1000); // the admission at 0 leaves
    expect(l.take().allowed).toBe(true);
    expect(l.count).toBe(3);
  });

  it('walks as many expiries as the cost needs', () => {
    const { clock, l } = make(SlidingWindowLog, 4, 1000);
    for (const t of [0, 100, 200, 300]) {
      clock.set(t);
      l.take();
    }
    clock.set(500);
    expect(l.peek(3).retryAfterMs).toBe(700); // three must leave: the one at 200 leaves at 1200
    expectExact(clock, l, 3);
  });

  it('retryAfterMs is exact for awkward values', () => {
    for (const [limit, windowMs, cost, start] of [
      [3, 700, 0.7, 123.4],
      [7.5, 333.3, 2.2, 1e6 + 0.1],
      [1, 1, 0.3, 5],
      [2, 592.5315003434762, 1, 8846409.74930948],
    ] as const) {
      const { clock, l } = make(SlidingWindowLog, limit, windowMs, start);
      for (let i = 0; i < 8; i++) {
        drain(l, cost);
        clock.advance(windowMs / 7);
        drain(l, cost);
        expectExact(clock, l, cost);
      }
    }
  });

  it('keeps one entry per admission instant, at most limit entries for unit costs', () => {
    const { clock, l } = make(SlidingWindowLog, 100, 1000);
    for (let i = 0; i < 50; i++) l.take();
    expect(l.entries).toBe(1);
    for (let t = 1; t < 5000; t++) {
      clock.set(t);
      l.take();
      expect(l.entries).toBeLessThanOrEqual(100);
    }
    clock.advance(1000);
    expect(l.entries).toBe(0);
    expect(l.count).toBe(0);
  });

  it('scales with the factor from its moment on; factor 0 refuses with Infinity and reason shed', () => {
    const { clock, l } = make(SlidingWindowLog, 10, 1000);
    expect(drain(l)).toBe(10);
    l.setFactor(0.5);
    clock.set(500);
    expect(l.take()).toMatchObject({ allowed: false, reason: 'limited', limit: 5 });
    clock.set(1000);
    expect(drain(l)).toBe(5);
    expect(l.take()).toMatchObject({ allowed: false, reason: 'shed' }); // 6 <= 10 at f = 1
    l.setFactor(0);
    expect(l.take()).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity, limit: 0 });
  });

  it('property: never more than limit·f in any window of windowMs, and admits whenever the exact count allows', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 50, noNaN: true }),
        fc.double({ min: 1, max: 5000, noNaN: true }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.array(
          fc.record({
            dtMs: fc.double({ min: 0, max: 3000, noNaN: true }),
            share: fc.double({ min: 0.01, max: 1, noNaN: true }),
          }),
          { maxLength: 80 },
        ),
        (limit, windowMs, factor, ops) => {
          const { clock, l } = make(SlidingWindowLog, limit, windowMs, 0, factor);
          const cap = limit * factor;
          const admitted: Array<[number, number]> = [];
          for (const op of ops) {
            clock.advance(op.dtMs);
            const now = clock.now();
            const cost = op.share * limit;
            // The test's own exact count over (now − windowMs, now]: an admission at u counts while
            // now < u + windowMs (written so, as the limiter documents it, to round the same way).
            const inWindow = admitted.filter(([u]) => now < u + windowMs).reduce((s, [, c]) => s + c, 0);
            const d = l.take(cost);
            const margin = limit * 1e-6;
            if (inWindow + cost <= cap - margin) expect(d.allowed).toBe(true);
            if (inWindow + cost > cap + margin) expect(d.allowed).toBe(false);
            if (d.allowed) admitted.push([now, cost]);
            else if (Number.isFinite(d.retryAfterMs)) {
              clock.set(now + d.retryAfterMs);
              expect(l.peek(cost).allowed).toBe(true);
            }
          }
          for (const [t] of admitted) {
            const sum = admitted.filter(([u]) => t < u + windowMs && u <= t).reduce((s, [, c]) => s + c, 0);
            expect(sum).toBeLessThanOrEqual(cap + limit * 1e-9 * (admitted.length + 1));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('window validation', () => {
  it.each([
    ['SlidingWindowCounter', SlidingWindowCounter],
    ['SlidingWindowLog', SlidingWindowLog],
  ] as const)('%s throws ConfigErrors naming option, value and what is allowed', (name, C) => {
    const clock = new ManualClock();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ limit: Number.NaN, windowMs: 1000 }, /`limit` to be a finite number > 0, got `NaN` \(number\)/],
      [{ limit: 0, windowMs: 1000 }, /`limit` to be a finite number > 0, got `0`/],
      [{ limit: 1, windowMs: -5 }, /`windowMs` to be a finite number > 0, got `-5`/],
      [{ limit: 1, windowMs: Infinity }, /`windowMs` to be a finite number > 0, got `Infinity`/],
      [{ limit: 1, windowMs: 1, factor: 1.01 }, /`factor` to be a finite number from 0 to 1, got `1.01`/],
      [
        { limit: 1, windowMs: 1, windowSec: 1 },
        new RegExp(`\`${name}.windowSec\` to be one of the known options`),
      ],
    ];
    for (const [options, message] of cases) {
      let err: unknown;
      try {
        new C({ clock, ...options } as never);
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    const l = new C({ limit: 2, windowMs: 10, clock });
    expect(() => l.take(3)).toThrow(
      /`cost` to be a finite number > 0 and <= limit \(2\), got `3` \(number\)/,
    );
    expect(() => l.peek(-1)).toThrow(/`cost` .* got `-1`/);
    expect(() => l.setFactor(Number.NaN)).toThrow(/`factor` to be a finite number from 0 to 1, got `NaN`/);
  });
});
