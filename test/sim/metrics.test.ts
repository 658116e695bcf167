import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  directionChanges,
  jainIndex,
  maxMinFairShares,
  onOffSwitches,
  quantileSorted,
  runs,
} from '../../simulations/src/metrics.js';
import { deriveRandom, mulberry32, sampler } from '../../simulations/src/random.js';
import { Fifo } from '../../simulations/src/server.js';

describe('metrics', () => {
  it('quantileSorted uses the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantileSorted(xs, 0.5)).toBe(50);
    expect(quantileSorted(xs, 0.99)).toBe(99);
    expect(quantileSorted(xs, 1)).toBe(100);
    expect(quantileSorted([7], 0.99)).toBe(7);
    expect(quantileSorted([], 0.5)).toBeNaN();
  });

  it("Jain's index is 1 for equal shares, 1/n when one takes all, null for nothing", () => {
    expect(jainIndex([3, 3, 3, 3])).toBe(1);
    expect(jainIndex([1, 0, 0, 0])).toBe(0.25);
    // (1 + 2)^2 / (2 · (1 + 4)) = 0.9
    expect(jainIndex([1, 2])).toBeCloseTo(0.9, 12);
    expect(jainIndex([0, 0])).toBeNull();
    expect(jainIndex([])).toBeNull();
  });

  it("Jain's index lies in [1/n, 1] (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }),
        (xs) => {
          const j = jainIndex(xs);
          if (xs.every((x) => x === 0)) return j === null;
          return j !== null && j >= 1 / xs.length - 1e-9 && j <= 1 + 1e-9;
        },
      ),
    );
  });

  it('max-min fair shares fill small demands and split the rest equally', () => {
    // capacity 30: the 5 is met, 25 left for two: 12.5 each.
    expect(maxMinFairShares([5, 100, 40], 30)).toEqual([5, 12.5, 12.5]);
    expect(maxMinFairShares([1, 2], 10)).toEqual([1, 2]);
  });

  it('max-min fair shares never exceed a demand nor the capacity (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1000, noNaN: true }), { minLength: 1, maxLength: 20 }),
        fc.double({ min: 0, max: 5000, noNaN: true }),
        (demands, cap) => {
          const s = maxMinFairShares(demands, cap);
          const total = s.reduce((a, b) => a + b, 0);
          const demanded = demands.reduce((a, b) => a + b, 0);
          return (
            s.every((x, i) => x <= demands[i]! + 1e-9 && x >= 0) &&
            total <= cap + 1e-6 &&
            Math.abs(total - Math.min(cap, demanded)) < 1e-6 * Math.max(1, cap)
          );
        },
      ),
    );
  });

  it('counts factor direction changes and on/off switches', () => {
    const pts = [
      { atMs: 100, factor: 0.9 }, // down
      { atMs: 200, factor: 0.8 }, // down
      { atMs: 300, factor: 0.85 }, // up: turn 1
      { atMs: 400, factor: 1 }, // up, off
      { atMs: 500, factor: 0.7 }, // down: turn 2, on
    ];
    expect(directionChanges(pts)).toBe(2);
    expect(onOffSwitches(pts, 0, 1000)).toBe(3);
    expect(onOffSwitches(pts, 150, 450)).toBe(1);
  });

  it('finds runs of true', () => {
    expect(runs([false, true, true, false, true])).toEqual([
      [1, 3],
      [4, 5],
    ]);
    expect(runs([])).toEqual([]);
  });
});

describe('random', () => {
  it('mulberry32 is deterministic and uniform on [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    let sum = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = a();
      expect(x).toBe(b());
      sum += x;
    }
    expect(sum / 100_000).toBeCloseTo(0.5, 2);
  });

  it('derived streams differ by label', () => {
    expect(deriveRandom(1, 'a')()).not.toBe(deriveRandom(1, 'b')());
    expect(deriveRandom(1, 'a')()).toBe(deriveRandom(1, 'a')());
  });

  it.each([
    [{ kind: 'constant', ms: 3 } as const, 3],
    [{ kind: 'exponential', meanMs: 2 } as const, 2],
    [{ kind: 'lognormal', meanMs: 2, cv: 1 } as const, 2],
    [{ kind: 'pareto', meanMs: 2, alpha: 3 } as const, 2],
  ])('%o has the stated mean', (d, mean) => {
    const draw = sampler(d, mulberry32(7));
    let s = 0;
    const n = 200_000;
    for (let i = 0; i < n; i++) s += draw();
    expect(Math.abs(s / n - mean) / mean).toBeLessThan(0.02);
  });
});

describe('Fifo', () => {
  it('keeps order through growth (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer(), fc.constant(null)), { maxLength: 300 }), (ops) => {
        const q = new Fifo<number>();
        const model: number[] = [];
        for (const op of ops) {
          if (op === null) expect(q.shift()).toBe(model.shift());
          else {
            q.push(op);
            model.push(op);
          }
          expect(q.size).toBe(model.length);
          expect(q.peek()).toBe(model[0]);
        }
      }),
    );
  });
});
