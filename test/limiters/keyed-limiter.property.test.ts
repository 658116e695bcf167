import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter, FACTOR_LOG_SIZE, type KeyedDecision } from '../../src/limiters/keyed-limiter.js';
import { effectiveFactor } from '../../src/limiters/priority.js';
import { TokenBucket } from '../../src/limiters/token-bucket.js';
import type { Priority } from '../../src/limiters/types.js';

const dtArb = fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1500, noNaN: true }));
const takeArb = (keys: number, priorities: readonly (Priority | undefined)[]) =>
  fc.record({
    kind: fc.constant('take' as const),
    key: fc.integer({ min: 0, max: keys - 1 }),
    costShare: fc.double({ min: 0.001, max: 1, noNaN: true }),
    priority: fc.constantFrom(...priorities),
    dtMs: dtArb,
  });
const factorArb = fc.record({
  kind: fc.constant('factor' as const),
  factor: fc.oneof(fc.constantFrom(0, 0.5, 1), fc.double({ min: 0, max: 1, noNaN: true })),
  dtMs: dtArb,
});
const configArb = fc.record({
  ratePerSec: fc.double({ min: 0.01, max: 5000, noNaN: true }),
  burst: fc.double({ min: 0.01, max: 1000, noNaN: true }),
});

function close(a: number, b: number): boolean {
  if (a === b) return true;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

describe('KeyedLimiter properties', () => {
  it('decides for every key exactly as an eagerly updated TokenBucket of its own (factor log included)', () => {
    let overflowed = 0;
    const opsArb = fc.array(
      fc.oneof(
        { weight: 2, arbitrary: takeArb(4, [undefined, 'normal', 'critical', 0.8]) },
        { weight: 1, arbitrary: factorArb },
      ),
      { maxLength: 4 * FACTOR_LOG_SIZE, size: 'max' },
    );
    fc.assert(
      fc.property(configArb, opsArb, (cfg, ops) => {
        const clock = new ManualClock(0);
        const source = new ManualFactor(1);
        const limiter = createLimiter({ ...cfg, clock, factor: source, maxKeys: 1000 });
        // Every key's reference bucket exists from the start: a key without a bucket in the
        // limiter must decide like one that has been idle all along.
        const buckets = new Map<number, TokenBucket>();
        for (let k = 0; k < 4; k++) buckets.set(k, new TokenBucket({ ...cfg, clock }));
        let f = 1;
        let changes = 0;
        for (const op of ops) {
          clock.advance(op.dtMs);
          if (op.kind === 'factor') {
            if (op.factor !== f && ++changes === FACTOR_LOG_SIZE + 1) overflowed++;
            source.set(op.factor);
            f = op.factor;
            for (const b of buckets.values()) b.setFactor(f);
            continue;
          }
          if (op.kind !== 'take') continue;
          const cost = op.costShare * cfg.burst;
          const b = buckets.get(op.key)!;
          const e = effectiveFactor(f, op.priority);
          const charge = e > 0 && e !== f ? cost * (f / e) : cost;
          const want = b.take(Math.min(charge, cfg.burst));
          const got = limiter.take(String(op.key), { cost, priority: op.priority });
          expect(got.allowed).toBe(want.allowed);
          expect(close(got.remaining, want.remaining)).toBe(true);
          expect(close(got.retryAfterMs, want.retryAfterMs)).toBe(true);
          expect(got.limit).toBe(want.limit);
          if (f === 1 && !got.allowed) expect(got.reason).toBe('limited');
          if (!got.allowed && got.reason !== 'limited') expect(got.reason).toBe('shed');
        }
      }),
      { numRuns: 150 },
    );
    expect(overflowed).toBeGreaterThan(0); // the runs did go past the end of the factor log
  });

  it('admits no more than capacity at t0 plus the integral of rate·f over [t0, t1], per key, whatever the tiers and priorities', () => {
    const opsArb = fc.array(
      fc.oneof(
        { weight: 3, arbitrary: takeArb(3, [undefined, 'critical', 'sheddable', 0.3]) },
        { weight: 1, arbitrary: factorArb },
      ),
      { maxLength: 80 },
    );
    fc.assert(
      fc.property(configArb, opsArb, (cfg, ops) => {
        const clock = new ManualClock(0);
        const source = new ManualFactor(1);
        // key 2 gets a tier of its own
        const tier = { ratePerSec: cfg.ratePerSec * 3, burst: cfg.burst / 2 };
        const limitsOf = (key: number) => (key === 2 ? tier : cfg);
        const limiter = createLimiter({
          ...cfg,
          clock,
          factor: source,
          tiers: (k) => (k === '2' ? tier : undefined),
        });
        let f = 1;
        const integral = [0, 0, 0];
        const events: Array<Array<{ integral: number; capBefore: number; admitted: number }>> = [[], [], []];
        for (const op of ops) {
          clock.advance(op.dtMs);
          for (let k = 0; k < 3; k++) integral[k]! += (limitsOf(k).ratePerSec * f * op.dtMs) / 1000;
          if (op.kind === 'factor') {
            for (let k = 0; k < 3; k++) {
              events[k]!.push({ integral: integral[k]!, capBefore: limitsOf(k).burst * f, admitted: 0 });
            }
            source.set(op.factor);
            f = op.factor;
            continue;
          }
          if (op.kind !== 'take') continue;
          const { burst } = limitsOf(op.key);
          const cost = op.costShare * burst;
          const d: KeyedDecision = limiter.take(String(op.key), { cost, priority: op.priority });
          // Tokens stay within [0, capacity]; the decision reports the key's own bucket.
          expect(d.remaining).toBeGreaterThanOrEqual(0);
          expect(d.remaining).toBeLessThanOrEqual(d.limit * (1 + 1e-12));
          expect(d.limit).toBeCloseTo(burst * f, 9);
          const charge = d.allowed ? cost * (f / effectiveFactor(f, op.priority)) : 0;
          events[op.key]!.push({ integral: integral[op.key]!, capBefore: burst * f, admitted: charge });
        }
        for (let k = 0; k < 3; k++) {
          const ev = events[k]!;
          for (let i = 0; i < ev.length; i++) {
            let admitted = 0;
            for (let j = i; j < ev.length; j++) {
              admitted += ev[j]!.admitted;
              const bound = ev[i]!.capBefore + (ev[j]!.integral - ev[i]!.integral);
              expect(admitted).toBeLessThanOrEqual(bound + 1e-9 * limitsOf(k).burst * (j - i + 2));
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it('never holds more than maxKeys keys', () => {
    const opsArb = fc.array(
      fc.oneof(
        { weight: 6, arbitrary: takeArb(40, [undefined, 'critical']) },
        { weight: 1, arbitrary: factorArb },
      ),
      { maxLength: 200 },
    );
    fc.assert(
      fc.property(configArb, fc.integer({ min: 1, max: 12 }), opsArb, (cfg, maxKeys, ops) => {
        const clock = new ManualClock(0);
        const source = new ManualFactor(1);
        const limiter = createLimiter({
          ...cfg,
          clock,
          factor: source,
          maxKeys,
          block: { afterRefusals: 2, durationMs: 500 },
          tiers: (k) =>
            Number(k) % 3 === 0 ? { ratePerSec: cfg.ratePerSec, burst: cfg.burst * 2 } : undefined,
          global: { ratePerSec: cfg.ratePerSec * 5, burst: cfg.burst * 5 },
        });
        for (const op of ops) {
          clock.advance(op.dtMs);
          if (op.kind === 'factor') source.set(op.factor);
          else if (op.kind === 'take')
            limiter.take(String(op.key), { cost: op.costShare * cfg.burst, priority: op.priority });
          expect(limiter.size).toBeLessThanOrEqual(maxKeys);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('decides the same when full buckets are dropped as when they are kept', () => {
    const opsArb = fc.array(
      fc.oneof(
        { weight: 4, arbitrary: takeArb(4, [undefined, 'critical', 'sheddable']) },
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('drop' as const),
            key: fc.integer({ min: 0, max: 3 }),
            dtMs: dtArb,
          }),
        },
        { weight: 1, arbitrary: factorArb },
      ),
      { maxLength: 120 },
    );
    fc.assert(
      fc.property(configArb, opsArb, (cfg, ops) => {
        const clock = new ManualClock(0);
        const source = new ManualFactor(1);
        const options = {
          ...cfg,
          clock,
          factor: source,
          block: { afterRefusals: 2, durationMs: 300 },
          global: { ratePerSec: cfg.ratePerSec * 2, burst: cfg.burst * 2 },
        };
        const keeps = createLimiter(options);
        const drops = createLimiter(options);
        let f = 1;
        for (const op of ops) {
          clock.advance(op.dtMs);
          if (op.kind === 'factor') {
            f = op.factor;
            source.set(f);
          } else if (op.kind === 'drop') {
            const key = String(op.key);
            const limit = cfg.burst * f;
            if (limit > 0 && keeps.peek(key, { cost: limit }).allowed) drops.delete(key);
          } else {
            const opts = { cost: op.costShare * cfg.burst, priority: op.priority };
            const a = keeps.take(String(op.key), opts);
            const b = drops.take(String(op.key), opts);
            expect(b.allowed).toBe(a.allowed);
            expect(b.reason).toBe(a.reason);
            expect(b.scope).toBe(a.scope);
            expect(close(b.remaining, a.remaining)).toBe(true);
            expect(close(b.retryAfterMs, a.retryAfterMs)).toBe(true);
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it("peek(key) refuses as peek(key, { cost: 1 }) does under a cut: 'shed' while the fill level scaled up to factor 1 could pay, else 'limited'", () => {
    const clock = new ManualClock(0);
    const factor = new ManualFactor(0.5);
    const limiter = createLimiter({ ratePerSec: 1, burst: 4, clock, factor });
    // Capacity 2 at factor 0.5, refilled at 0.5 a second: two takes leave the key at 0.
    expect(limiter.take('k').allowed).toBe(true);
    expect(limiter.take('k').allowed).toBe(true);
    for (const [advanceMs, reason] of [
      [800, 'limited'],
      [400, 'shed'],
    ] as const) {
      clock.advance(advanceMs);
      const hot = limiter.peek('k');
      expect(hot).toMatchObject({ allowed: false, reason });
      expect(hot).toEqual(limiter.peek('k', { cost: 1 }));
    }
    limiter.close();
  });

  it('decides take(key) and peek(key) exactly as take(key, { cost: 1 }) and peek(key, { cost: 1 }) (the hot paths and the general one)', async () => {
    const long = 'k'.repeat(300); // held under its digest
    const keyArb = fc.constantFrom('0', '1', '2', '3', 'x'.repeat(100), long);
    const opArb = fc.oneof(
      { weight: 8, arbitrary: fc.record({ kind: fc.constant('take' as const), key: keyArb, dtMs: dtArb }) },
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('peek' as const), key: keyArb, dtMs: dtArb }) },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('acquire' as const), key: keyArb, dtMs: dtArb }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keyArb, dtMs: dtArb }) },
      { weight: 2, arbitrary: factorArb },
    );
    const cfgArb = fc.record({
      ratePerSec: fc.double({ min: 0.01, max: 5000, noNaN: true }),
      burst: fc.oneof(fc.constant(1), fc.double({ min: 0.5, max: 50, noNaN: true })),
      maxKeys: fc.integer({ min: 1, max: 8 }),
    });
    const outcome = (fn: () => KeyedDecision): KeyedDecision | string => {
      try {
        return fn();
      } catch (e) {
        return String(e);
      }
    };
    await fc.assert(
      fc.asyncProperty(cfgArb, fc.array(opArb, { maxLength: 3 * FACTOR_LOG_SIZE }), async (cfg, ops) => {
        const clock = new ManualClock(0);
        const source = new ManualFactor(1);
        const hot = createLimiter({ ...cfg, clock, factor: source });
        const general = createLimiter({ ...cfg, clock, factor: source });
        const acquired: Promise<unknown>[] = [];
        for (const op of ops) {
          clock.advance(op.dtMs);
          if (op.kind === 'factor') source.set(op.factor);
          else if (op.kind === 'delete') {
            hot.delete(op.key);
            general.delete(op.key);
          } else if (op.kind === 'peek') {
            expect(outcome(() => hot.peek(op.key))).toEqual(outcome(() => general.peek(op.key, { cost: 1 })));
          } else if (op.kind === 'acquire') {
            // Reservations leave negative balances behind for the hot path to refill.
            for (const l of [hot, general]) {
              try {
                acquired.push(l.acquire(op.key, { maxWaitMs: 2000 }).catch(() => undefined));
              } catch {}
            }
          } else {
            const a = outcome(() => hot.take(op.key));
            const b = outcome(() => general.take(op.key, { cost: 1 }));
            expect(a).toEqual(b);
          }
          expect(hot.size).toBe(general.size);
        }
        hot.close();
        general.close();
        await Promise.all(acquired);
      }),
      { numRuns: 200 },
    );
  });
});
