import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { FixedWindow } from '../../src/limiters/fixed-window.js';

function win(limit: number, windowMs: number, start = 0, factor?: number) {
  const clock = new ManualClock(start);
  return {
    clock,
    w: new FixedWindow({ limit, windowMs, clock, ...(factor === undefined ? {} : { factor }) }),
  };
}

describe('FixedWindow', () => {
  it('counts per aligned window and resets at the edge', () => {
    const { clock, w } = win(3, 1000, 250);
    expect(w.take().remaining).toBe(2);
    w.take();
    expect(w.take()).toMatchObject({ allowed: true, remaining: 0, resetMs: 750 });
    const d = w.take();
    expect(d).toMatchObject({ allowed: false, reason: 'limited', retryAfterMs: 750, resetMs: 750, limit: 3 });
    clock.advance(749);
    expect(w.take().allowed).toBe(false);
    clock.advance(1); // 1000: a new window
    expect(w.take()).toMatchObject({ allowed: true, remaining: 2 });
  });

  it('retryAfterMs lands in the next window even when now + (edge − now) rounds short of the edge', () => {
    // Here now + ((k + 1)·windowMs − now) is one ulp short of window k + 1.
    const { clock, w } = win(1, 592.5315003434762, 8846409.74930948);
    w.take();
    const d = w.take();
    expect(d.allowed).toBe(false);
    const t0 = clock.now();
    clock.set(t0 + d.retryAfterMs);
    expect(w.take().allowed).toBe(true);
  });

  it('admits 2·limit across an edge: the fixed window’s edge burst', () => {
    const { clock, w } = win(10, 1000, 999);
    let admitted = 0;
    for (let i = 0; i < 20; i++) if (w.take().allowed) admitted++;
    clock.advance(1); // 1000
    for (let i = 0; i < 20; i++) if (w.take().allowed) admitted++;
    expect(admitted).toBe(20); // within 1 ms
  });

  it('takes fractional costs that add up exactly to the limit', () => {
    const { w } = win(1, 1000);
    expect(w.take(0.1).allowed).toBe(true);
    expect(w.take(0.2).allowed).toBe(true);
    expect(w.take(0.7).allowed).toBe(true);
    expect(w.take(0.001).allowed).toBe(false);
  });

  it('scales the limit by the factor with no rounding: admits while count + cost <= limit·f', () => {
    const { clock, w } = win(10, 1000, 0, 0.55);
    let n = 0;
    while (w.take().allowed) n++;
    expect(n).toBe(5); // 6 > 5.5
    expect(w.take(0.5)).toMatchObject({ allowed: true, limit: 5.5, remaining: 0 });
    const d = w.take();
    expect(d).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: 1000 }); // 6.5 <= 10 at f = 1
    clock.advance(1000);
    w.setFactor(0.05);
    expect(w.take(0.5).allowed).toBe(true);
    expect(w.take(1)).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity }); // 1 > 0.5
  });

  it('applies a factor change from its moment on: the count stays, the limit moves', () => {
    const { w } = win(10, 1000);
    for (let i = 0; i < 6; i++) w.take();
    w.setFactor(0.5);
    expect(w.take()).toMatchObject({ allowed: false, reason: 'shed', remaining: 0, limit: 5 });
    w.setFactor(0.8);
    expect(w.take()).toMatchObject({ allowed: true, remaining: 1 });
    w.setFactor(1);
    for (let i = 0; i < 3; i++) expect(w.take().allowed).toBe(true);
    expect(w.take()).toMatchObject({ allowed: false, reason: 'limited' });
  });

  it('refuses everything at factor 0 with Infinity and reason shed', () => {
    const { clock, w } = win(10, 1000, 0, 0);
    expect(w.take()).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity, limit: 0 });
    clock.advance(5000);
    expect(w.take().allowed).toBe(false);
  });

  it('peek charges nothing', () => {
    const { w } = win(1, 1000);
    expect(w.peek().allowed).toBe(true);
    expect(w.peek().allowed).toBe(true);
    expect(w.count).toBe(0);
  });

  it('validates options and cost with messages naming option, value and what is allowed', () => {
    const clock = new ManualClock();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ limit: Number.NaN, windowMs: 1000 }, /`limit` to be a finite number > 0, got `NaN` \(number\)/],
      [{ limit: -1, windowMs: 1000 }, /`limit` to be a finite number > 0, got `-1`/],
      [{ limit: 1, windowMs: Infinity }, /`windowMs` to be a finite number > 0, got `Infinity`/],
      [{ limit: 1, windowMs: 0 }, /`windowMs` to be a finite number > 0, got `0`/],
      [{ limit: 1, windowMs: 1, factor: 2 }, /`factor` to be a finite number from 0 to 1, got `2`/],
      [
        { limit: 1, windowMs: 1, max: 3 },
        /`FixedWindow.max` to be one of the known options \(limit, windowMs, clock, factor\), got `3`/,
      ],
    ];
    for (const [options, message] of cases) {
      let err: unknown;
      try {
        new FixedWindow({ clock, ...options } as never);
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    const w = new FixedWindow({ limit: 5, windowMs: 1000, clock });
    expect(() => w.take(6)).toThrow(
      /`cost` to be a finite number > 0 and <= limit \(5\), got `6` \(number\)/,
    );
    expect(() => w.peek(0)).toThrow(/`cost` .* got `0`/);
    expect(() => w.setFactor(-1)).toThrow(/`factor` to be a finite number from 0 to 1, got `-1`/);
  });

  it('property: never more than limit·f per aligned window; retryAfterMs is exact', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 100, noNaN: true }),
        fc.double({ min: 1, max: 5000, noNaN: true }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.array(
          fc.record({
            dtMs: fc.double({ min: 0, max: 3000, noNaN: true }),
            share: fc.double({ min: 0.01, max: 1, noNaN: true }),
          }),
          { maxLength: 80 },
        ),
        (limit, windowMs, factor, start, ops) => {
          const { clock, w } = win(limit, windowMs, start, factor);
          const perWindow = new Map<number, number>();
          for (const op of ops) {
            clock.advance(op.dtMs);
            const cost = op.share * limit;
            const d = w.take(cost);
            const k = Math.floor(clock.now() / windowMs);
            if (d.allowed) perWindow.set(k, (perWindow.get(k) ?? 0) + cost);
            else if (Number.isFinite(d.retryAfterMs)) {
              const t0 = clock.now();
              if (d.retryAfterMs > 1) {
                clock.set(t0 + d.retryAfterMs - 1);
                expect(w.peek(cost).allowed).toBe(false);
              }
              clock.set(t0 + d.retryAfterMs);
              expect(w.peek(cost).allowed).toBe(true);
            } else expect(cost).toBeGreaterThan(limit * factor);
          }
          for (const sum of perWindow.values()) {
            expect(sum).toBeLessThanOrEqual(limit * factor + limit * 1e-9 * (ops.length + 1));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
