/**
 * How V8 compiles the keyed limiter's hot path (`take(key)` without options, KeyedEngine.takeOne):
 * the token arithmetic must stay in floats when the burst is a whole number. A full bucket is set
 * to its capacity; when that capacity reaches `takeOne` as a small integer, every admission on a
 * full bucket teaches V8 small-integer arithmetic, and the optimised code checks each operation for
 * a whole number (1–2 ns a call on a hot key; docs/benchmarks.md) and deoptimises at the first
 * fractional balance. This test sees that deoptimisation through V8's natives syntax.
 */
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { createLimiter, type KeyedLimiter } from '../../../src/limiters/keyed-limiter.js';

setFlagsFromString('--allow-natives-syntax');
type Natives = (f: unknown) => number;
const prepare = new Function('f', '%PrepareFunctionForOptimization(f);') as Natives;
const optimizeNext = new Function('f', '%OptimizeFunctionOnNextCall(f);') as Natives;
const status = new Function('f', 'return %GetOptimizationStatus(f);') as Natives;
/** V8's OptimizationStatus bit for "runs optimised code". */
const OPTIMIZED = 16;

describe('take(key): the hot path compiled by V8', () => {
  it('keeps float arithmetic on a full bucket with a whole-number burst (no deopt at a fractional balance)', (ctx) => {
    const clock = new ManualClock();
    // Rates with fractions and a whole burst: only the capacity is a whole number.
    const full = createLimiter({ ratePerSec: 1_000_500, burst: 100, clock, maxKeys: 4 });
    const partial = createLimiter({ ratePerSec: 1_500, burst: 100, clock, maxKeys: 4 });
    // The caller the hot path is inlined into, as in an application (or bench/limiter.mjs).
    const admit = (l: KeyedLimiter, key: string): boolean => l.take(key).allowed;

    // Both keys exist before anything is compiled (creating one takes the general path).
    full.take('k');
    partial.take('k');
    prepare(admit);
    // Warm on a bucket that stays full: 1,000.5 tokens a ms refill it to 100 at every call.
    for (let i = 0; i < 50; i++) {
      clock.advance(1);
      expect(admit(full, 'k')).toBe(true);
    }
    optimizeNext(admit);
    clock.advance(1);
    expect(admit(full, 'k')).toBe(true);
    if ((status(admit) & OPTIMIZED) === 0) {
      ctx.skip(); // this runtime does not optimise on request (coverage, --jitless): nothing to see
      return;
    }

    // 1.5 tokens a ms: 100 → 99 → 98, then 99.5 → 98.5, a fractional balance.
    clock.advance(1);
    expect(admit(partial, 'k')).toBe(true);
    expect(admit(partial, 'k')).toBe(true);
    clock.advance(1);
    expect(admit(partial, 'k')).toBe(true);
    expect(partial.peek('k').remaining).toBeCloseTo(97.5, 9); // 98.5 held: what one more would leave
    expect(status(admit) & OPTIMIZED).toBe(OPTIMIZED);
  });
});
