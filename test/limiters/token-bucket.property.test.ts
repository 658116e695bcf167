import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isAbortError } from '../../src/errors.js';
import { TokenBucket } from '../../src/limiters/token-bucket.js';

type Op = { dtMs: number } & ({ kind: 'take'; costShare: number } | { kind: 'factor'; factor: number });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    dtMs: fc.double({ min: 0, max: 2000, noNaN: true }),
    kind: fc.constant('take' as const),
    costShare: fc.double({ min: 0.001, max: 1, noNaN: true }),
  }),
  fc.record({
    dtMs: fc.double({ min: 0, max: 2000, noNaN: true }),
    kind: fc.constant('factor' as const),
    factor: fc.oneof(fc.constantFrom(0, 1), fc.double({ min: 0, max: 1, noNaN: true })),
  }),
);

const configArb = fc.record({
  ratePerSec: fc.double({ min: 0.01, max: 10_000, noNaN: true }),
  burst: fc.double({ min: 0.01, max: 1000, noNaN: true }),
  factor: fc.double({ min: 0, max: 1, noNaN: true }),
  fill: fc.double({ min: 0, max: 1, noNaN: true }),
});

describe('TokenBucket properties', () => {
  it('admits no more than the tokens at start plus the integral of ratePerSec·f, over every interval', () => {
    fc.assert(
      // Reading `tokens` settles the bucket, which would hide a factor change applied
      // retroactively; so only some runs observe it.
      fc.property(configArb, fc.array(opArb, { maxLength: 60 }), fc.boolean(), (cfg, ops, observe) => {
        const clock = new ManualClock(0);
        const initialTokens = cfg.burst * cfg.factor * cfg.fill;
        const b = new TokenBucket({
          ratePerSec: cfg.ratePerSec,
          burst: cfg.burst,
          factor: cfg.factor,
          initialTokens,
          clock,
        });
        // The test's own account: the factor in force, and per event its time, the factor just
        // before it, the cumulative integral of ratePerSec·f up to it, and the cost it admitted.
        let f = cfg.factor;
        let integral = 0;
        const events: Array<{ fBefore: number; integral: number; admitted: number }> = [];
        for (const op of ops) {
          clock.advance(op.dtMs);
          integral += (cfg.ratePerSec * f * op.dtMs) / 1000;
          const fBefore = f;
          let admitted = 0;
          if (op.kind === 'take') {
            const cost = Math.max(Number.MIN_VALUE, op.costShare * cfg.burst);
            const d = b.take(cost);
            if (d.allowed) admitted = cost;
            expect(d.factor).toBe(f);
            if (!d.allowed) expect(d.retryAfterMs).toBeGreaterThan(0);
          } else {
            b.setFactor(op.factor);
            f = op.factor;
          }
          events.push({ fBefore, integral, admitted });
          if (!observe) continue;
          const tokens = b.tokens;
          expect(tokens).toBeGreaterThanOrEqual(0);
          expect(tokens).toBeLessThanOrEqual(cfg.burst * f);
        }
        // Each admission may use up to burst·1e-9 of rounding tolerance; allow that and float noise.
        const slack = (n: number, bound: number) => cfg.burst * 1e-9 * (n + 1) + Math.abs(bound) * 1e-12;
        const total = events.reduce((s, e) => s + e.admitted, 0);
        const whole = initialTokens + integral;
        expect(total).toBeLessThanOrEqual(whole + slack(events.length, whole));
        // Any interval [event i, event j]: the bucket held at most burst·f(just before i) then.
        for (let i = 0; i < events.length; i++) {
          let admitted = 0;
          for (let j = i; j < events.length; j++) {
            admitted += events[j]!.admitted;
            const bound = cfg.burst * events[i]!.fBefore + events[j]!.integral - events[i]!.integral;
            expect(admitted).toBeLessThanOrEqual(bound + slack(j - i + 1, bound));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('retryAfterMs is exact: refused 1 ms before it, admitted at it', () => {
    fc.assert(
      fc.property(
        configArb,
        fc.array(opArb, { maxLength: 20 }),
        fc.double({ min: 0.001, max: 1, noNaN: true }),
        (cfg, ops, probeShare) => {
          const clock = new ManualClock(12_345.678);
          const b = new TokenBucket({
            ratePerSec: cfg.ratePerSec,
            burst: cfg.burst,
            factor: Math.max(cfg.factor, 0.01),
            clock,
          });
          for (const op of ops) {
            clock.advance(op.dtMs);
            if (op.kind === 'take') b.take(Math.max(Number.MIN_VALUE, op.costShare * cfg.burst));
            else b.setFactor(op.factor);
          }
          const cost = probeShare * cfg.burst;
          const d = b.peek(cost);
          if (d.allowed) return;
          // A cost within the admission tolerance (burst·1e-9) of the capacity can still be served.
          if (cost > cfg.burst * b.factor + cfg.burst * 1e-9) {
            expect(d.retryAfterMs).toBe(Infinity);
            expect(d.reason).toBe(b.factor < 1 ? 'shed' : 'limited');
            return;
          }
          if (b.factor === 0) return;
          const t0 = clock.now();
          const r = d.retryAfterMs;
          expect(Number.isFinite(r)).toBe(true);
          // One millisecond earlier must still be short, unless the rate is so fast that 1 ms of
          // refill is within the admission tolerance.
          const perMs = (cfg.ratePerSec * b.factor) / 1000;
          if (r > 1 && perMs > cfg.burst * 1e-8) {
            clock.set(t0 + r - 1);
            expect(b.peek(cost).allowed).toBe(false);
          }
          clock.set(t0 + r);
          expect(b.take(cost).allowed).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('acquire serves waiters in FIFO order, and a take is never admitted while anyone waits', async () => {
    type QOp =
      | { kind: 'acquire'; dtMs: number; share: number; maxWaitMs: number; abortAfter: number | null }
      | { kind: 'take'; dtMs: number; share: number }
      | { kind: 'factor'; dtMs: number; factor: number };
    const dt = fc.integer({ min: 0, max: 500 });
    const share = fc.double({ min: 0.05, max: 1, noNaN: true });
    const qop: fc.Arbitrary<QOp> = fc.oneof(
      fc.record({
        kind: fc.constant('acquire' as const),
        dtMs: dt,
        share,
        maxWaitMs: fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 3000 })),
        abortAfter: fc.option(fc.integer({ min: 0, max: 10 })),
      }),
      fc.record({ kind: fc.constant('take' as const), dtMs: dt, share }),
      fc.record({
        kind: fc.constant('factor' as const),
        dtMs: dt,
        factor: fc.double({ min: 0.05, max: 1, noNaN: true }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.double({ min: 0.5, max: 100, noNaN: true }),
        fc.double({ min: 1, max: 20, noNaN: true }),
        fc.array(qop, { maxLength: 40 }),
        async (ratePerSec, burst, ops) => {
          const clock = new ManualClock(0);
          const b = new TokenBucket({ ratePerSec, burst, clock, initialTokens: 0 });
          const served: number[] = [];
          const pending: Array<Promise<unknown>> = [];
          const aborts: Array<{ at: number; ac: AbortController }> = [];
          for (let i = 0; i < ops.length; i++) {
            const op = ops[i]!;
            clock.advance(op.dtMs);
            for (const a of aborts) if (a.at === i) a.ac.abort();
            const cost = op.kind === 'factor' ? 0 : op.share * burst;
            if (op.kind === 'acquire') {
              const ac = new AbortController();
              if (op.abortAfter !== null) aborts.push({ at: i + op.abortAfter, ac });
              pending.push(
                b.acquire(cost, { maxWaitMs: op.maxWaitMs, signal: ac.signal }).then(
                  (d) => {
                    if (d.allowed) served.push(i);
                  },
                  (e: unknown) => {
                    expect(isAbortError(e)).toBe(true);
                  },
                ),
              );
            } else if (op.kind === 'take') {
              const d = b.take(cost);
              if (d.allowed) expect(b.waiting).toBe(0);
            } else b.setFactor(op.factor);
            await new Promise<void>((r) => setImmediate(r));
          }
          b.setFactor(1);
          for (const a of aborts) a.ac.abort();
          clock.advance((burst / ratePerSec) * 1000 * (ops.length + 1));
          await Promise.all(pending);
          expect(b.waiting).toBe(0);
          expect(served).toEqual([...served].sort((x, y) => x - y));
        },
      ),
      { numRuns: 100 },
    );
  });
});
