import { setMaxListeners } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { isAbortError } from '../../../src/errors.js';
import { ManualFactor } from '../../../src/limiters/factor.js';
import { createLimiter, type KeyedDecision } from '../../../src/limiters/keyed-limiter.js';

const flush = () => new Promise<void>((r) => setImmediate(r));

const op = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('acquire' as const),
      key: fc.integer({ min: 0, max: 1 }),
      cost: fc.constantFrom(0.5, 1, 2),
      maxWaitMs: fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 5000 })),
    }),
  },
  fc.record({ t: fc.constant('abort' as const), i: fc.nat() }),
  fc.record({
    t: fc.constant('factor' as const),
    f: fc.oneof(fc.constantFrom(0, 0.2, 1, 5.6e-305), fc.double({ min: 0, max: 1, noNaN: true })),
  }),
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1000 }) }),
  },
);

interface Call {
  key: string;
  cost: number;
  ac: AbortController;
  decision?: KeyedDecision;
  error?: unknown;
  /** When the admission was seen: at most STEP_MS after it happened. */
  at?: number;
}

const STEP_MS = 25;

describe('KeyedLimiter.acquire, property', () => {
  it('any sequence of acquires, aborts and factor changes settles every waiter and never admits more than the bucket allows', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const RATE = 2; // per second
        const BURST = 2;
        const clock = new ManualClock();
        const factor = new ManualFactor(1);
        const limiter = createLimiter({ ratePerSec: RATE, burst: BURST, clock, factor, maxKeys: 10 });
        const calls: Call[] = [];
        let f = 1;
        // The factor's history: from times[i] on it is factors[i]. ∫ f dt from 0 to t:
        const times = [0];
        const factors = [1];
        const integral = (t: number): number => {
          let sum = 0;
          for (let i = 0; i < times.length && times[i]! < t; i++) {
            const end = Math.min(t, times[i + 1] ?? Infinity);
            sum += factors[i]! * (end - times[i]!);
          }
          return sum;
        };
        const seen = () => {
          for (const c of calls) if (c.decision?.allowed === true && c.at === undefined) c.at = clock.now();
        };
        // Over any interval [a, b] a key admits at most its burst plus what the factor let it refill
        // (the interval widened by a step, since an admission is seen up to a step late).
        const check = () => {
          for (const key of ['k0', 'k1', 'k2']) {
            const mine = calls.filter((c) => c.key === key && c.at !== undefined);
            for (const a of mine) {
              for (const b of mine) {
                if (b.at! < a.at!) continue;
                const admitted = mine
                  .filter((c) => c.at! >= a.at! && c.at! <= b.at!)
                  .reduce((s, c) => s + c.cost, 0);
                const allowance =
                  BURST + (RATE / 1000) * (integral(b.at!) - integral(a.at! - STEP_MS)) + 1e-6;
                expect(admitted).toBeLessThanOrEqual(allowance);
              }
            }
          }
        };
        const step = async (ms: number) => {
          for (let left = ms; left > 0; left -= STEP_MS) {
            clock.advance(Math.min(STEP_MS, left));
            await flush();
            seen();
          }
        };
        const setFactor = (next: number) => {
          factor.set(next);
          f = next;
          times.push(clock.now());
          factors.push(f);
        };
        for (const o of ops) {
          if (o.t === 'acquire') {
            const c: Call = { key: `k${o.key}`, cost: o.cost, ac: new AbortController() };
            setMaxListeners(0, c.ac.signal);
            calls.push(c);
            limiter.acquire(c.key, { cost: o.cost, maxWaitMs: o.maxWaitMs, signal: c.ac.signal }).then(
              (d) => {
                c.decision = d;
              },
              (e) => {
                c.error = e;
              },
            );
          } else if (o.t === 'abort') {
            calls[o.i % Math.max(1, calls.length)]?.ac.abort();
          } else if (o.t === 'factor') {
            setFactor(o.f);
          } else {
            await step(o.ms);
          }
          await flush();
          seen();
        }
        // Back to factor 1: every waiter left is admitted in bounded time.
        if (f !== 1) setFactor(1);
        const pending = calls.reduce((s, c) => s + c.cost, 0);
        await step((pending / RATE) * 1000 + 2000);
        check();
        for (const c of calls) {
          const settled = c.decision !== undefined || isAbortError(c.error);
          expect(settled).toBe(true);
        }
        expect(limiter.waiting).toBe(0);
      }),
      { numRuns: 100 },
    );
  });
});
