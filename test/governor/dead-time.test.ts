/**
 * The failure, on virtual time: a queue signal with dead time (a pool-bound overload).
 *
 * Model. A pool completes C = 400 requests a second. A Shedder that learned from admissions while
 * the loop was idle holds a base of 1,140/s (the offered 1,200/s less 5%), so it admits
 * `min(offered, 1140·f)`. Admitted requests reach the pool 500 ms later (an upstream step: the dead
 * time), and wait there; the governor watches the pool's waiting count (target 5, limit 50).
 * Offered load: 200/s (0.5×), then 1,200/s (3×) from 5 s to 25 s, then 200/s again.
 *
 * The old controller cut 20% a second for as long as the queue read above its limit. The queue is
 * an integral: it reads "overloaded" until the backlog has drained, long after the cuts had brought
 * the admitted rate under capacity, so it cut to the floor (0.05) and then admitted 57/s of a
 * 200/s load (71% shed) until the additive recovery crawled back, 19 s from the floor.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Governor, type GovernorOptions } from '../../src/governor/governor.js';
import { queueDepth } from '../../src/signals/queue-depth.js';
import { directionChanges } from './helpers.js';

const CAPACITY = 400;
const BASE = 1140;
const DEAD_MS = 500;
const STEP_MS = 10;

function run(options: Partial<GovernorOptions>, clampQueue = false) {
  const clock = new ManualClock();
  let queue = 0;
  // Admitted work in transit to the pool: one bucket per 10 ms step, DEAD_MS long.
  const transit: number[] = new Array(DEAD_MS / STEP_MS).fill(0);
  const signal = queueDepth('pool-waiting', () => (clampQueue ? Math.min(queue, 50) : queue), {
    target: 5,
    limit: 50,
  });
  const g = new Governor({ signals: [signal], clock, warmupMs: 0, ...options });
  const factors: number[] = [1];
  g.subscribe((f) => factors.push(f));
  g.start();
  const offeredAt = (t: number) => (t < 5000 || t >= 25_000 ? 200 : 1200);
  let lowest = 1;
  let lowestDuringOverload = 1;
  const after = { offered: 0, admitted: 0 };
  let maxQueue = 0;
  for (let t = 0; t < 45_000; t += STEP_MS) {
    const offered = offeredAt(t);
    const admitted = Math.min(offered, BASE * g.factor);
    transit.push((admitted * STEP_MS) / 1000);
    queue = Math.max(0, queue + transit.shift()! - (CAPACITY * STEP_MS) / 1000);
    maxQueue = Math.max(maxQueue, queue);
    // From 2 s after the load falls: how much of the light load is still refused.
    if (t >= 27_000) {
      after.offered += offered;
      after.admitted += admitted;
    }
    clock.advance(STEP_MS);
    lowest = Math.min(lowest, g.factor);
    if (t < 25_000) lowestDuringOverload = Math.min(lowestDuringOverload, g.factor);
  }
  g.stop();
  return {
    lowest,
    lowestDuringOverload,
    shedAfter: 1 - after.admitted / after.offered,
    maxQueue,
    reversals: directionChanges(factors.slice(0, -1)),
  };
}

describe('a queue signal with dead time (pool-bound overload, 0.5× → 3× → 0.5×)', () => {
  it('the old behaviour, reproduced (a queue read only up to its limit, additive recovery): the floor', () => {
    // What the controller saw before: the queue's pressure clamped at 1, so its draining was
    // invisible, and recovery only once the smoothed pressure fell below releaseAt.
    const old = run({ clearMs: 3_600_000 }, true);
    expect(old.lowest).toBe(0.05);
  });

  it('the new controller: no overshoot to the floor, and no refusals of the light load 2 s after it falls', () => {
    const r = run({});
    // The right factor for 3× is 400/1140 = 0.35 (less to drain the backlog); the floor is 0.05.
    expect(r.lowestDuringOverload).toBeGreaterThan(0.15);
    expect(r.lowest).toBeGreaterThan(0.15);
    expect(r.shedAfter).toBe(0);
    expect(r.reversals).toBeLessThanOrEqual(4);
  });
});

describe('warm-up with strong evidence (issue 8)', () => {
  it('a process started into an overload sheds within the evidence time; start-up noise under twice the limit does not end the warm-up', () => {
    const start = (read: (t: number) => number) => {
      const clock = new ManualClock();
      const g = new Governor({
        signals: [queueDepth('q', () => read(clock.now()), { target: 5, limit: 50 })],
        clock,
      });
      g.start();
      let firstCutAt: number | undefined;
      for (let t = 0; t < 10_000; t += 250) {
        clock.advance(250);
        if (firstCutAt === undefined && g.factor < 1) firstCutAt = clock.now();
      }
      g.stop();
      return firstCutAt;
    };
    // A queue of 500 (level 11) from the start: the warm-up ends after 2 s of evidence.
    const overload = start(() => 500);
    expect(overload).toBeDefined();
    expect(overload!).toBeLessThanOrEqual(3000);
    // A start-up queue of 80 (level 1.7: past the limit, under twice it) for 8 s: no cut in warm-up.
    expect(start((t) => (t < 8000 ? 80 : 0))).toBeUndefined();
  });
});
