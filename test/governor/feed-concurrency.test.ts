/**
 * The feed and a concurrency stage that follows the governor it feeds (issue 10's pool-bound step).
 * On ManualClock: a pool of 8 slots held 20 ms (capacity 400/s) behind a concurrency stage of limit
 * 8 whose limit the governor's factor scales, load 0.5× → 3× → 0.5× of capacity, 10 s each,
 * evenly spaced. At 3× the stage refuses two requests in three whatever the factor, so if those
 * refusals were pressure, every cut would shrink the limit, refuse more, and cut again: down to the
 * floor (one slot of eight), and the refusals at the floor keep it there after the load has gone.
 */
import { describe, expect, it } from 'vitest';
import { createGuard } from '../../src/adapters/core.js';
import { GovernorFeed } from '../../src/adapters/governor-feed.js';
import type { Route } from '../../src/adapters/routes.js';
import { admissionPipeline } from '../../src/admission/pipeline.js';
import { ManualClock } from '../../src/clock.js';
import { Governor } from '../../src/governor/governor.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';
import { scripted } from './helpers.js';

const CAPACITY = 400;
const HOLD_MS = 20;

async function poolStep(follow: boolean) {
  const clock = new ManualClock();
  const governor = new Governor({ signals: [scripted('idle', () => 0)], clock, warmupMs: 0 });
  const limiter = new ConcurrencyLimiter({ limit: 8, ...(follow ? { factor: governor } : {}), clock });
  const pipeline = admissionPipeline({ concurrency: limiter });
  const feed = new GovernorFeed();
  feed.connect(governor, 'default', [{ pipeline } as unknown as Route]);
  governor.start();

  const segments = [
    { x: 0.5, ms: 10_000 },
    { x: 3, ms: 10_000 },
    { x: 0.5, ms: 10_000 },
  ];
  const served = [0, 0, 0];
  const refusedAt: number[] = [];
  let minFactor = 1;
  const flush = async () => {
    for (let i = 0; i < 4; i++) await Promise.resolve();
  };
  let t0 = 0;
  for (const [i, s] of segments.entries()) {
    const gap = 1000 / (s.x * CAPACITY);
    let next = t0;
    const end = t0 + s.ms;
    while (clock.now() < end) {
      while (next <= clock.now() && next < end) {
        next += gap;
        const req = { key: 'k', priority: 'normal' as const, cost: 1 };
        void Promise.resolve(pipeline.run(req)).then((v) => {
          feed.record(v);
          if (!v.allowed) {
            refusedAt.push(clock.now());
            return;
          }
          served[i]!++;
          clock.setTimeout(() => pipeline.release(req), HOLD_MS);
        });
      }
      await flush();
      clock.advance(0.5);
      await flush();
      minFactor = Math.min(minFactor, governor.factor);
    }
    t0 = end;
  }
  governor.stop();
  limiter.close();
  feed.close();
  const fall = 20_000;
  return {
    minFactor,
    overloadShare: served[1]! / (CAPACITY * 10),
    lateRefusals: refusedAt.filter((t) => t > fall + 2000).length,
    lastRefusalAfterFallMs: Math.max(0, ...refusedAt.map((t) => t - fall)),
  };
}

describe('the feed and a concurrency stage that follows the fed governor', () => {
  it('pool-bound 0.5x -> 3x -> 0.5x: the factor does not fall to the floor, goodput stays >= 95%, no refusal 2 s after the fall', async () => {
    const r = await poolStep(true);
    expect(r.minFactor).toBeGreaterThan(0.05);
    expect(r.overloadShare).toBeGreaterThanOrEqual(0.95);
    expect(r.lateRefusals).toBe(0);
    expect(r.lastRefusalAfterFallMs).toBeLessThanOrEqual(2000);
  });

  it('a stage that does not follow it still feeds it: its refusals are pressure (the factor falls)', async () => {
    const r = await poolStep(false);
    expect(r.minFactor).toBeLessThan(1);
    // Nothing the factor scales stands in the way: the stage keeps the pool full.
    expect(r.overloadShare).toBeGreaterThanOrEqual(0.95);
    expect(r.lateRefusals).toBe(0);
  });

  it("adds no queue-time signal for a guard's limiter that follows the governor", () => {
    const clock = new ManualClock();
    const governor = new Governor({ signals: [scripted('idle', () => 0)], clock });
    const scaled = createGuard({ governor, concurrency: { limit: 2, factor: governor, clock } });
    expect(Object.keys(governor.snapshot().signals)).toEqual(['idle', 'http-refusal-share']);
    scaled.close();
    const fixed = createGuard({ governor, concurrency: { limit: 2, clock } });
    expect(Object.keys(governor.snapshot().signals)).toEqual([
      'idle',
      'http-refusal-share',
      'http-queue-time',
    ]);
    fixed.close();
  });
});
