import { describe, expect, it } from 'vitest';
import { pinSystemTime, unpinSystemTime } from '../src/clock.js';
import { ManualClock, systemClock } from '../src/index.js';

describe('ManualClock', () => {
  it('fires due timers in time order, each seeing its own due time', () => {
    const clock = new ManualClock(100);
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => seen.push(['b', clock.now()]), 20);
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10);
    clock.setTimeout(() => seen.push(['c', clock.now()]), 20);
    clock.advance(15);
    expect(seen).toEqual([['a', 110]]);
    clock.advance(100);
    expect(seen).toEqual([
      ['a', 110],
      ['b', 120],
      ['c', 120],
    ]);
    expect(clock.now()).toBe(215);
  });

  it('fires timers that timers schedule within the same advance', () => {
    const clock = new ManualClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 5);
    }, 5);
    clock.advance(10);
    expect(seen).toEqual([5, 10]);
    expect(clock.pendingTimers).toBe(0);
  });

  it('never fires a cancelled timer', () => {
    const clock = new ManualClock();
    let fired = false;
    const h = clock.setTimeout(() => {
      fired = true;
    }, 1);
    h.cancel();
    h.cancel();
    clock.advance(5);
    expect(fired).toBe(false);
  });

  it('refuses to move backwards or by a non-finite amount', () => {
    const clock = new ManualClock(10);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(/finite/);
    expect(() => clock.set(5)).toThrow(/>= now/);
  });
});

describe('systemClock', () => {
  it('is monotonic and its timers can be cancelled', () => {
    const a = systemClock.now();
    const b = systemClock.now();
    expect(b).toBeGreaterThanOrEqual(a);
    const h = systemClock.setTimeout(() => {
      throw new Error('must not fire');
    }, 1);
    h.cancel();
  });
});

describe('pinSystemTime', () => {
  /** Spins until performance.now() has moved past `t` (sub-microsecond on any machine). */
  const spinPast = (t: number): void => {
    while (performance.now() <= t) {}
  };

  it('holds systemClock.now() at its first reading until unpinned, nested pins keeping the outer one', () => {
    const outer = pinSystemTime();
    const inner = pinSystemTime();
    // The first reading, taken inside the inner pin, is the outer pin's too.
    const t = systemClock.now();
    spinPast(t);
    expect(systemClock.now()).toBe(t);
    unpinSystemTime(inner);
    spinPast(t);
    expect(systemClock.now()).toBe(t);
    unpinSystemTime(outer);
    expect(systemClock.now()).toBeGreaterThan(t);
    // Unpinned, the clock runs.
    const u = systemClock.now();
    spinPast(u);
    expect(systemClock.now()).toBeGreaterThan(u);
  });

  it('reads nothing until asked: the reading is the first taken inside the pin, not the pin itself', () => {
    const pin = pinSystemTime();
    const afterPin = performance.now();
    spinPast(afterPin);
    const t = systemClock.now();
    unpinSystemTime(pin);
    expect(t).toBeGreaterThan(afterPin);
  });
});
