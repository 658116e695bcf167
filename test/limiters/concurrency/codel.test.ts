import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { StandingQueue } from '../../../src/limiters/concurrency/codel.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import { advance, onOffSwitches, percentile, refusedSlices, runPool } from './pool-model.js';

describe('StandingQueue: enter after an interval above the target, stay while refusing', () => {
  it('enters once the oldest waiter has been at or above the target for a whole interval', () => {
    const q = new StandingQueue(5, 100, 0);
    q.oldest(10, 10, 5); // a waiter arrives at 10: below the target until 15
    expect(q.standingAt()).toBe(115);
    expect(q.standing(114.9, 1)).toBe(false);
    expect(q.standing(115, 1)).toBe(true);
    expect(q.standing(115, 0)).toBe(false); // nothing waits: nothing stands
  });

  it('a new oldest below the target, or an empty queue, restarts the interval; one above it does not', () => {
    const q = new StandingQueue(5, 100, 0);
    q.oldest(0, 0, 5);
    // At 50 the oldest leaves; the next one came at 47 (3 ms old, below the target until 52).
    q.oldest(50, 47, 5);
    expect(q.standingAt()).toBe(152);
    // At 90 the oldest leaves; the next one came at 60 (30 ms old, above the target): no change.
    q.oldest(90, 60, 5);
    expect(q.standingAt()).toBe(152);
    // Empty at 120.
    q.oldest(120, undefined, 5);
    expect(q.standingAt()).toBe(220);
  });

  it('stays standing for an interval after each waiter that reached the target, then leaves', () => {
    const q = new StandingQueue(5, 100, 0);
    q.oldest(0, 0, 5);
    expect(q.standing(105, 3)).toBe(true);
    q.above(105); // refused at the target
    // Refusing keeps every waiter below the target, and the queue even empties now and then:
    q.oldest(106, undefined, 5);
    q.oldest(107, 107, 5);
    expect(q.standingAt()).toBe(212);
    // ... yet it stands on, for an interval after the last refusal.
    expect(q.standing(150, 1)).toBe(true);
    q.above(180); // the last one refused; the queue empties, and a waiter comes at 250
    q.oldest(180, undefined, 5);
    q.oldest(250, 250, 5);
    expect(q.standing(279.9, 1)).toBe(true);
    expect(q.standing(280, 1)).toBe(false);
    expect(q.standingAt()).toBe(355);
  });
});

describe('ConcurrencyLimiter in front of a pool of 8 slots held 20 ms (capacity 400/s)', () => {
  const pool = { slots: 8, holdMs: 20 };

  for (const limit of [8, undefined]) {
    const name = limit === undefined ? 'adaptive limit' : `limit ${limit}`;
    // `batches` (several requests at once, as a server reads them in one event-loop turn) is what
    // made the old rule (standing = not empty for an interval) stop refusing for 100 ms whenever
    // the refusals emptied the queue: 6 to 16 on/off switches in these 10 s, for the same seeds.
    for (const arrivals of ['uniform', 'batches'] as const) {
      it(`${name}, ${arrivals} arrivals, 0.5× for 1 s → 3× for 10 s → 0.5×: refuses in every 100 ms slice of the overload, not before, and stops soon after it`, async () => {
        const clock = new ManualClock();
        const l = new ConcurrencyLimiter({ clock, ...(limit === undefined ? {} : { limit }) });
        const segments = [
          { ms: 1000, perSec: 200 },
          { ms: 10_000, perSec: 1200 },
          { ms: 2000, perSec: 200 },
        ];
        const run = runPool(l, clock, { ...pool, segments, arrivals, seed: 1 });
        // Steps of 0.1 ms: an admitted request starts its hold at most that late.
        await advance(clock, 13_000, 0.1);
        const slices = refusedSlices(run.refusedAtMs, 0, 13_000);
        // One run of refusals: on once the queue stands, off after the load falls.
        expect(onOffSwitches(slices)).toBe(2);
        const first = slices.indexOf(true);
        const last = slices.lastIndexOf(true);
        expect(first).toBeGreaterThanOrEqual(10); // nothing refused at 0.5×
        expect(first).toBeLessThanOrEqual(12); // on within 200 ms of the rise
        expect(last).toBeGreaterThanOrEqual(109); // still refusing in the overload's last slice
        expect(last).toBeLessThanOrEqual(111); // off within 200 ms of the fall
        // Refused on sojourn time, not for a full queue or a deadline.
        expect(Object.keys(run.reasons)).toEqual(['codel']);
        // The pool stays busy and latency bounded. Served in the overload's 10 s, of 4,000: 99.8%
        // evenly spaced, 99.7% adaptive in batches, 95.2% with the known limit in batches (a slot
        // freed in a lull between batches idles: the queue holds only waiters younger than the
        // target, and a limit equal to the pool's size leaves no spare request at the pool).
        const served = run.completedAtMs.filter((t) => t >= 1000 && t < 11_000).length;
        expect(served).toBeGreaterThanOrEqual(0.94 * 4000);
        expect(percentile(run.latenciesMs, 99)).toBeLessThan(150);
        l.close();
      });
    }
  }

  it('below capacity (0.8×, evenly spaced) refuses nothing and queues little', async () => {
    for (const limit of [8, undefined]) {
      const clock = new ManualClock();
      const l = new ConcurrencyLimiter({ clock, ...(limit === undefined ? {} : { limit }) });
      const run = runPool(l, clock, { ...pool, segments: [{ ms: 5000, perSec: 320 }] });
      await advance(clock, 5200);
      expect(run.refused).toBe(0);
      expect(run.completed).toBe(run.admitted);
      expect(run.admitted).toBeGreaterThan(1590);
      expect(percentile(run.latenciesMs, 99)).toBeLessThan(30);
      l.close();
    }
  });

  it('at half capacity with Poisson arrivals (bursts and lulls) refuses nothing', async () => {
    for (const limit of [8, undefined]) {
      const clock = new ManualClock();
      const l = new ConcurrencyLimiter({ clock, ...(limit === undefined ? {} : { limit }) });
      const run = runPool(l, clock, {
        ...pool,
        segments: [{ ms: 10_000, perSec: 200 }],
        arrivals: 'poisson',
        seed: 3,
      });
      await advance(clock, 10_200);
      expect(run.refused).toBe(0);
      expect(run.admitted).toBeGreaterThan(1800);
      l.close();
    }
  });
});
