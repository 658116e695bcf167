// refund(key, { cost, priority }) on the in-memory key limiters: exact at the same instant (the key's
// tokens, its refusal streak, the global bucket, as if the take had never been made), capped after
// a refill, the window the charge went into, a key the take created, a factor change in between.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { ManualFactor } from '../../../src/limiters/factor.js';
import {
  createLimiter,
  type KeyedLimiter,
  type KeyedLimiterOptions,
  type KeyedWindowLimiter,
} from '../../../src/limiters/keyed-limiter.js';
import type { Decision, Priority } from '../../../src/limiters/types.js';

function setup(options: Partial<KeyedLimiterOptions> = {}) {
  const clock = new ManualClock();
  const factor = new ManualFactor(1);
  const limiter = createLimiter({ ratePerSec: 10, burst: 10, clock, factor, ...options }) as KeyedLimiter;
  return { clock, factor, limiter };
}

/** What the key holds, read through a peek of cost 1 (no priority: it is charged 1 at any factor). */
function held(limiter: KeyedLimiter, key: string): number {
  const d = limiter.peek(key, { cost: 1 });
  return d.allowed ? d.remaining + 1 : d.remaining;
}

/** Decisions compared field by field, numbers to 1e-6 (a take and a refund round in float). */
function expectSame(a: Decision, b: Decision): void {
  expect(a.allowed).toBe(b.allowed);
  expect(a.reason).toBe(b.reason);
  for (const k of ['remaining', 'limit', 'retryAfterMs', 'resetMs', 'factor'] as const) {
    if (Number.isFinite(b[k])) expect(a[k]).toBeCloseTo(b[k], 6);
    else expect(a[k]).toBe(b[k]);
  }
}

describe('KeyedLimiter.refund', () => {
  it('at the same instant leaves the key as it was: refund(key) on the short path and with options', () => {
    const { clock, limiter } = setup();
    limiter.take('k', { cost: 3 });
    clock.advance(50); // 7.5 tokens
    const before = limiter.peek('k');
    expect(limiter.take('k').allowed).toBe(true);
    limiter.refund('k');
    expect(limiter.peek('k')).toEqual(before);
    expect(limiter.take('k', { cost: 2.5, priority: 'normal' }).allowed).toBe(true);
    limiter.refund('k', { cost: 2.5, priority: 'normal' });
    expect(limiter.peek('k')).toEqual(before);
  });

  it('a key held under its digest (longer than 256 bytes) is refunded under it too', () => {
    const { limiter } = setup();
    const long = 'k'.repeat(300);
    limiter.take(long, { cost: 4 });
    const before = limiter.peek(long);
    limiter.take(long);
    limiter.refund(long);
    expect(limiter.peek(long)).toEqual(before);
  });

  it('after a refill adds the cost back capped at the capacity', () => {
    const { clock, limiter } = setup();
    limiter.take('k', { cost: 3 }); // 7
    clock.advance(200); // 9
    limiter.refund('k', { cost: 3 }); // min(12, 10)
    expect(held(limiter, 'k')).toBe(10);
    limiter.take('k', { cost: 5 }); // 5
    clock.advance(100); // 6
    limiter.refund('k', { cost: 2 });
    expect(held(limiter, 'k')).toBeCloseTo(8, 9);
  });

  it('a priority charge (cost·f/e, the reserve kept for higher priorities) is given back exactly', () => {
    const { factor, limiter } = setup();
    factor.set(0.5);
    for (const priority of ['sheddable', 'critical', 0.8, 'normal'] as Priority[]) {
      const before = limiter.peek('k', { cost: 1, priority: 'critical' });
      const d = limiter.take('k', { cost: 2, priority });
      expect(d.allowed).toBe(true);
      expect(held(limiter, 'k')).toBeLessThan(before.remaining + 1);
      limiter.refund('k', { cost: 2, priority });
      expectSame(limiter.peek('k', { cost: 1, priority: 'critical' }), before);
    }
  });

  it('gives back the refusal streak the admission ended (a block then starts where it would have)', () => {
    const { clock, limiter } = setup({
      ratePerSec: 1,
      burst: 2,
      block: { afterRefusals: 3, durationMs: 5000 },
    });
    limiter.take('k', { cost: 2 }); // 0
    expect(limiter.take('k').reason).toBe('limited'); // streak 1
    expect(limiter.take('k').reason).toBe('limited'); // streak 2
    clock.advance(1000); // 1 token
    expect(limiter.take('k').allowed).toBe(true); // ends the streak
    limiter.refund('k');
    // Without the refunded admission this is the third refusal in a row: blocked.
    expect(limiter.take('k', { cost: 2 })).toMatchObject({ allowed: false, reason: 'blocked' });
  });

  it('joins the streak given back to the refusals counted since', () => {
    const { clock, limiter } = setup({
      ratePerSec: 1,
      burst: 2,
      block: { afterRefusals: 3, durationMs: 5000 },
    });
    limiter.take('k', { cost: 2 });
    expect(limiter.take('k').reason).toBe('limited'); // streak 1
    clock.advance(1000);
    expect(limiter.take('k').allowed).toBe(true); // ends it, 0 tokens
    expect(limiter.take('k').reason).toBe('limited'); // streak 1 again
    limiter.refund('k'); // streak 2, 1 token
    expect(limiter.take('k', { cost: 2 })).toMatchObject({ allowed: false, reason: 'blocked' });
  });

  it('gives back to the global bucket too', () => {
    const { limiter } = setup({ global: { ratePerSec: 1, burst: 2 } });
    expect(limiter.take('a').allowed).toBe(true);
    limiter.refund('a');
    expect(limiter.take('b').allowed).toBe(true);
    expect(limiter.take('c').allowed).toBe(true);
    expect(limiter.take('d')).toMatchObject({ allowed: false, scope: 'global' });
  });

  it('a key the take created ends as a missing key; in a full table it is forgotten, so the next new key evicts nobody', () => {
    const { limiter } = setup({ maxKeys: 2 });
    limiter.take('a', { cost: 4 });
    limiter.take('b', { cost: 4 });
    limiter.take('c'); // evicts a or b (CLOCK)
    expect(limiter.size).toBe(2);
    limiter.refund('c');
    expect(limiter.size).toBe(1);
    expect(limiter.peek('c')).toEqual(limiter.peek('never-seen'));
    const kept = held(limiter, 'a') < 10 ? 'a' : 'b';
    expect(held(limiter, kept)).toBe(6);
    limiter.take('d');
    limiter.refund('d');
    expect(held(limiter, kept)).toBe(6); // no eviction: the freed slot served
    // Not full: the key stays, with a missing key's bucket.
    const roomy = setup().limiter;
    roomy.take('x');
    roomy.refund('x');
    expect(roomy.size).toBe(1);
    expect(roomy.peek('x')).toEqual(roomy.peek('never-seen'));
  });

  it('a factor change between take and refund: the bucket is replayed, then capped at the new capacity', () => {
    const { clock, factor, limiter } = setup();
    limiter.take('k', { cost: 4 }); // 6
    limiter.take('other', { cost: 9 }); // 1
    clock.advance(100); // k 7 (not settled: replayed on refund)
    factor.set(0.5); // capacity 5: k clamped to 5
    clock.advance(100); // +0.5
    limiter.refund('k', { cost: 4 });
    expect(held(limiter, 'k')).toBe(5);
    // The timeline is intact: the untouched key replays the same change as a twin limiter's.
    const twin = setup();
    twin.limiter.take('other', { cost: 9 });
    twin.clock.advance(100);
    twin.factor.set(0.5);
    twin.clock.advance(100);
    expect(limiter.peek('other')).toEqual(twin.limiter.peek('other'));
    // After a factor rise, a refund gives back no more than a missing key holds (growth creates no
    // tokens): the key decides like a missing key, not above it.
    factor.set(1);
    limiter.take('k', { cost: 2 });
    limiter.refund('k', { cost: 2 });
    expect(limiter.peek('k')).toEqual(limiter.peek('never-seen'));
  });

  it('property: take + refund at the same instant changes no later decision (tiers, block, global, priorities, factor changes)', () => {
    const op = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant('take' as const),
          key: fc.constantFrom('a', 'b', 'c'),
          cost: fc.constantFrom(1, 1, 2, 0.5, 3),
          priority: fc.option(fc.constantFrom<Priority>('normal', 'critical', 'sheddable', 0.8), {
            nil: undefined,
          }),
          refund: fc.boolean(),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 500 }) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('factor' as const), f: fc.constantFrom(1, 0.6, 0.3, 0) }),
      },
    );
    const config = fc.record({
      block: fc.boolean(),
      global: fc.boolean(),
      tiers: fc.boolean(),
    });
    fc.assert(
      fc.property(config, fc.array(op, { maxLength: 80 }), (cfg, ops) => {
        const clock = new ManualClock();
        const make = () => {
          const factor = new ManualFactor(1);
          const limiter = createLimiter({
            ratePerSec: 4,
            burst: 4,
            clock,
            factor,
            ...(cfg.block ? { block: { afterRefusals: 2, durationMs: 700 } } : {}),
            ...(cfg.global ? { global: { ratePerSec: 6, burst: 5 } } : {}),
            ...(cfg.tiers
              ? { tiers: (k: string) => (k === 'a' ? { ratePerSec: 2, burst: 6 } : undefined) }
              : {}),
          }) as KeyedLimiter;
          return { factor, limiter };
        };
        // `refunded` makes every admitted take marked `refund` and refunds it at once; `without`
        // never makes those takes.
        const refunded = make();
        const without = make();
        for (const o of ops) {
          if (o.kind === 'advance') clock.advance(o.ms);
          else if (o.kind === 'factor') {
            refunded.factor.set(o.f);
            without.factor.set(o.f);
          } else {
            const options =
              o.priority === undefined ? { cost: o.cost } : { cost: o.cost, priority: o.priority };
            const d = refunded.limiter.take(o.key, options);
            if (o.refund && d.allowed) refunded.limiter.refund(o.key, options);
            else expectSame(d, without.limiter.take(o.key, options));
          }
          for (const k of ['a', 'b', 'c']) {
            expectSame(refunded.limiter.peek(k, { cost: 1 }), without.limiter.peek(k, { cost: 1 }));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('KeyedWindowLimiter.refund', () => {
  for (const algorithm of ['fixed-window', 'sliding-window'] as const) {
    const setupWindow = () => {
      const clock = new ManualClock();
      const limiter = createLimiter({ algorithm, limit: 5, windowMs: 1000, clock }) as KeyedWindowLimiter;
      return { clock, limiter };
    };

    it(`${algorithm}: take + refund at the same instant leaves the counts as they were`, () => {
      const { clock, limiter } = setupWindow();
      limiter.take('k', { cost: 2 });
      clock.advance(1300);
      limiter.take('k');
      const before = limiter.peek('k');
      expect(limiter.take('k', { cost: 2, priority: 'sheddable' }).allowed).toBe(true);
      limiter.refund('k', { cost: 2, priority: 'sheddable' });
      expect(limiter.peek('k')).toEqual(before);
      // Never below 0.
      limiter.refund('k', { cost: 5 });
      expect(limiter.peek('k', { cost: 5 }).allowed).toBe(algorithm === 'fixed-window');
    });

    it(`${algorithm}: a refund once the charge's window has passed gives nothing to the next`, () => {
      const { clock, limiter } = setupWindow();
      limiter.take('k', { cost: 3 });
      clock.advance(algorithm === 'fixed-window' ? 1000 : 2000);
      limiter.refund('k', { cost: 3 });
      limiter.take('k', { cost: 4 });
      // The window holds the 4 it counted, not 1.
      expect(limiter.take('k', { cost: 2 }).allowed).toBe(false);
    });

    it(`${algorithm}: the documented edge: after a take moved the key into the next window, a refund counts off that window`, () => {
      // The limiter knows a key's latest window, not when the refunded take was made: bounded by
      // one cost per refund (see KeyedWindowLimiter.refund).
      const { clock, limiter } = setupWindow();
      limiter.take('k', { cost: 3 });
      clock.advance(algorithm === 'fixed-window' ? 1000 : 2000);
      limiter.take('k', { cost: 4 });
      limiter.refund('k', { cost: 3 });
      expect(limiter.peek('k', { cost: 4 }).allowed).toBe(true);
    });
  }

  it('sliding-window: a refund in the next window takes the cost off the previous count, which still weighs', () => {
    const clock = new ManualClock();
    const limiter = createLimiter({
      algorithm: 'sliding-window',
      limit: 4,
      windowMs: 1000,
      clock,
    }) as KeyedWindowLimiter;
    limiter.take('k', { cost: 4 });
    clock.advance(1500); // previous 4 weighs 2
    expect(limiter.peek('k', { cost: 3 }).allowed).toBe(false);
    limiter.refund('k', { cost: 4 });
    expect(limiter.peek('k', { cost: 4 }).allowed).toBe(true);
  });

  it('a key the take created is forgotten when the table is full', () => {
    const clock = new ManualClock();
    const limiter = createLimiter({
      algorithm: 'fixed-window',
      limit: 5,
      windowMs: 1000,
      maxKeys: 1,
      clock,
    }) as KeyedWindowLimiter;
    limiter.take('a');
    limiter.refund('a');
    expect(limiter.size).toBe(0);
  });
});
