import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import type { ConcurrencyDecision, ConcurrencyPermit } from '../../../src/limiters/concurrency/types.js';
import { ManualFactor } from '../../../src/limiters/factor.js';

const KEYS = ['heavy', 'light', 'other'] as const;

type Op =
  | {
      kind: 'acquire';
      key: (typeof KEYS)[number] | undefined;
      priority: 'critical' | 'normal' | 'sheddable';
      cost: number;
      maxWaitMs: number | undefined;
      abortable: boolean;
      now: boolean;
    }
  | { kind: 'release'; index: number }
  | { kind: 'abort'; index: number }
  | { kind: 'factor'; factor: number }
  | { kind: 'update'; maxQueue: number }
  | { kind: 'advance'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      // The heavy key comes most often.
      key: fc.constantFrom('heavy', 'heavy', 'heavy', 'light', 'other', undefined),
      priority: fc.constantFrom(
        'critical' as const,
        'normal' as const,
        'normal' as const,
        'sheddable' as const,
      ),
      cost: fc.integer({ min: 1, max: 2 }),
      maxWaitMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
      abortable: fc.boolean(),
      now: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), index: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('factor' as const),
      factor: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('update' as const), maxQueue: fc.integer({ min: 0, max: 8 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 150 }) }),
  },
);

const configArb = fc.record({
  limit: fc.integer({ min: 1, max: 5 }),
  maxQueue: fc.integer({ min: 0, max: 8 }),
  codel: fc.boolean(),
  order: fc.constantFrom('adaptive' as const, 'fifo' as const),
});

describe('ConcurrencyLimiter, fair between keys: properties', () => {
  it('per-key places are exact at every step and all zero once every request is done; every request is answered exactly once', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { maxLength: 100 }), async (cfg, ops) => {
        const clock = new ManualClock();
        const factor = new ManualFactor(1);
        const l = new ConcurrencyLimiter({
          limit: cfg.limit,
          maxQueue: cfg.maxQueue,
          maxWaitMs: 200,
          codel: cfg.codel ? { targetMs: 5, intervalMs: 30 } : false,
          order: cfg.order,
          factor,
          clock,
        });
        const violations: string[] = [];
        interface Req {
          readonly key: string | undefined;
          readonly cost: number;
          readonly ac: AbortController;
          answers: number;
          /** Waiting (`queued`), holding a permit (`held`), or done. */
          state: 'queued' | 'held' | 'done';
          permit: ConcurrencyPermit | undefined;
        }
        const reqs: Req[] = [];
        const answer = (r: Req, d: ConcurrencyDecision) => {
          r.answers++;
          if (r.answers > 1) violations.push('answered twice');
          if (d.allowed) {
            r.state = 'held';
            r.permit = d;
          } else r.state = 'done';
        };
        /** What each key should hold: its held permits' and its waiters' units. */
        const expected = (key: string) =>
          reqs.reduce((n, r) => n + (r.key === key && r.state !== 'done' ? r.cost : 0), 0);
        const settle = () => new Promise<void>((res) => setImmediate(res));
        for (const op of ops) {
          switch (op.kind) {
            case 'acquire': {
              const r: Req = {
                key: op.key,
                cost: op.cost,
                ac: new AbortController(),
                answers: 0,
                state: 'queued',
                permit: undefined,
              };
              reqs.push(r);
              const base = { priority: op.priority, cost: op.cost, ...(op.key ? { key: op.key } : {}) };
              if (op.now) {
                // The concurrency stage's way: try at once, then wait.
                const d = l.tryAcquire(base);
                if (d.allowed) {
                  answer(r, d);
                  break;
                }
              }
              void l
                .acquire({
                  ...base,
                  ...(op.maxWaitMs === undefined ? {} : { maxWaitMs: op.maxWaitMs }),
                  ...(op.abortable ? { signal: r.ac.signal } : {}),
                })
                .then((d) => answer(r, d));
              break;
            }
            case 'release': {
              const held = reqs.filter((r) => r.state === 'held');
              if (held.length === 0) break;
              const r = held[op.index % held.length]!;
              r.state = 'done';
              if (!r.permit!.release()) violations.push('a first release did nothing');
              if (r.permit!.release()) violations.push('released twice');
              break;
            }
            case 'abort': {
              const queued = reqs.filter((r) => r.state === 'queued');
              if (queued.length > 0) queued[op.index % queued.length]!.ac.abort();
              break;
            }
            case 'factor':
              factor.set(op.factor);
              break;
            case 'update':
              l.update({ maxQueue: op.maxQueue });
              break;
            case 'advance':
              clock.advance(op.ms);
              break;
          }
          await settle();
          for (const k of KEYS) {
            if (l.placesOf(k) !== expected(k))
              violations.push(`${k} holds ${l.placesOf(k)}, expected ${expected(k)}`);
          }
          const waiting = reqs.filter((r) => r.state === 'queued').length;
          if (l.waiting !== waiting) violations.push(`${l.waiting} waiting, expected ${waiting}`);
          if (l.waiting > l.options.maxQueue)
            violations.push(`${l.waiting} waiting > maxQueue ${l.options.maxQueue}`);
        }
        // Every request completes: release what is held until nobody waits.
        for (let round = 0; round < 100 && reqs.some((r) => r.state !== 'done'); round++) {
          for (const r of reqs) {
            if (r.state !== 'held') continue;
            r.state = 'done';
            r.permit!.release();
          }
          clock.advance(50);
          await settle();
        }
        expect(violations).toEqual([]);
        expect(reqs.every((r) => r.state === 'done' && r.answers === 1)).toBe(true);
        for (const k of KEYS) expect(l.placesOf(k)).toBe(0);
        expect(l.keysHeld).toBe(0);
        expect(l.inFlight).toBe(0);
        expect(l.waiting).toBe(0);
        l.close();
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
