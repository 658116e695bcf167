import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { ConcurrencyLimiter } from '../../../src/limiters/concurrency/limiter.js';
import type { ConcurrencyDecision, ConcurrencyPermit } from '../../../src/limiters/concurrency/types.js';
import { ManualFactor } from '../../../src/limiters/factor.js';
import { priorityLevel } from '../../../src/limiters/priority.js';

type Op =
  | {
      kind: 'acquire';
      priority: 'critical' | 'normal' | 'sheddable';
      maxWaitMs: number | undefined;
      abortable: boolean;
    }
  | { kind: 'release'; index: number; dropped: boolean }
  | { kind: 'abort'; index: number }
  | { kind: 'factor'; factor: number }
  | { kind: 'update'; limit: number | undefined; maxQueue: number | undefined; maxWaitMs: number | undefined }
  | { kind: 'advance'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      priority: fc.constantFrom('critical' as const, 'normal' as const, 'sheddable' as const),
      maxWaitMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
      abortable: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('release' as const), index: fc.nat(), dropped: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), index: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('factor' as const),
      factor: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 120 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      limit: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
      maxQueue: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
      maxWaitMs: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
    }),
  },
);

const configArb = fc.record({
  limit: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
  maxQueue: fc.integer({ min: 0, max: 8 }),
  codel: fc.boolean(),
  order: fc.constantFrom('adaptive' as const, 'fifo' as const),
});

describe('ConcurrencyLimiter properties', () => {
  it('never exceeds its limit, answers every waiter, serves priority first, releases every slot exactly once (across live updates)', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, fc.array(opArb, { maxLength: 80 }), async (cfg, ops) => {
        const clock = new ManualClock();
        const factor = new ManualFactor(1);
        const l = new ConcurrencyLimiter({
          ...(cfg.limit === undefined
            ? { maxConcurrent: 6, adaptive: { windowMs: 20, minSamples: 2 } }
            : { limit: cfg.limit }),
          maxQueue: cfg.maxQueue,
          maxWaitMs: 200,
          codel: cfg.codel ? { targetMs: 5, intervalMs: 30 } : false,
          order: cfg.order,
          factor,
          clock,
        });
        const violations: string[] = [];
        l.on('admitted', (e) => {
          // A lone unit always fits; otherwise the admission stays within its priority's limit.
          if (e.inFlight > 1 && e.inFlight > e.limit)
            violations.push(`inFlight ${e.inFlight} > limit ${e.limit}`);
          if (e.inFlight > 1 && e.inFlight > l.limit)
            violations.push(`inFlight ${e.inFlight} > base ${l.limit}`);
        });
        const pending: {
          p: Promise<ConcurrencyDecision>;
          settled: boolean;
          ac: AbortController;
          level: number;
        }[] = [];
        const held: ConcurrencyPermit[] = [];
        let released = 0;
        let admitted = 0;
        const settle = () => new Promise<void>((r) => setImmediate(r));
        for (const op of ops) {
          switch (op.kind) {
            case 'acquire': {
              const ac = new AbortController();
              const level = priorityLevel(op.priority);
              const entry = {
                p: l.acquire({
                  priority: op.priority,
                  ...(op.maxWaitMs === undefined ? {} : { maxWaitMs: op.maxWaitMs }),
                  ...(op.abortable ? { signal: ac.signal } : {}),
                }),
                settled: false,
                ac,
                level,
              };
              void entry.p.then((d) => {
                entry.settled = true;
                if (d.allowed) {
                  admitted++;
                  held.push(d);
                }
              });
              pending.push(entry);
              break;
            }
            case 'release': {
              if (held.length === 0) break;
              const [permit] = held.splice(op.index % held.length, 1);
              if (permit!.release({ dropped: op.dropped })) released++;
              if (permit!.release()) violations.push('released twice');
              break;
            }
            case 'abort':
              if (pending.length > 0) pending[op.index % pending.length]!.ac.abort();
              break;
            case 'factor':
              factor.set(op.factor);
              break;
            case 'advance':
              clock.advance(op.ms);
              break;
            case 'update': {
              const limitBefore = l.limit;
              l.update({
                // A limiter that learns its limit takes no fixed one.
                ...(op.limit === undefined || cfg.limit === undefined ? {} : { limit: op.limit }),
                ...(op.maxQueue === undefined ? {} : { maxQueue: op.maxQueue }),
                ...(op.maxWaitMs === undefined ? {} : { maxWaitMs: op.maxWaitMs }),
              });
              if (op.limit !== undefined && cfg.limit !== undefined && l.limit !== op.limit)
                violations.push(`limit ${l.limit} after update to ${op.limit} (was ${limitBefore})`);
              break;
            }
          }
          await settle();
          if (l.waiting > l.options.maxQueue)
            violations.push(`${l.waiting} waiting > maxQueue ${l.options.maxQueue}`);
          // Work conservation: with nothing in flight, nobody waits (a lone unit always fits).
          if (l.inFlight === 0 && l.waiting > 0) violations.push('a waiter waits with nothing in flight');
        }
        // Drain: release everything, let every waiter be admitted or refused, then close.
        for (let round = 0; round < 100 && (held.length > 0 || l.waiting > 0); round++) {
          while (held.length > 0) {
            if (held.pop()!.release()) released++;
          }
          clock.advance(50);
          await settle();
        }
        l.close();
        await settle();
        while (held.length > 0) if (held.pop()!.release()) released++;
        expect(violations).toEqual([]);
        expect(pending.every((e) => e.settled)).toBe(true);
        expect(released).toBe(admitted);
        expect(l.inFlight).toBe(0);
        expect(l.waiting).toBe(0);
        expect(clock.pendingTimers).toBe(0);
      }),
      { numRuns: 150 },
    );
  });

  it('live updates: admissions within the limit in force, the queue within maxQueue, excess refused queue-full, every waiter answered', async () => {
    type U =
      | { kind: 'acquire'; priority: 'critical' | 'normal' | 'sheddable' }
      | { kind: 'release'; index: number }
      | { kind: 'update'; limit: number | undefined; maxQueue: number | undefined }
      | { kind: 'advance'; ms: number };
    const uArb: fc.Arbitrary<U> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('acquire' as const),
          priority: fc.constantFrom('critical' as const, 'normal' as const, 'sheddable' as const),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), index: fc.nat() }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('update' as const),
          limit: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
          maxQueue: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 50 }) }),
      },
    );
    let totalEvicted = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(uArb, { minLength: 10, maxLength: 60, size: 'max' }), async (ops) => {
        const clock = new ManualClock();
        const l = new ConcurrencyLimiter({ limit: 2, maxQueue: 8, maxWaitMs: 1000, codel: false, clock });
        const violations: string[] = [];
        l.on('admitted', (e) => {
          if (e.inFlight > 1 && e.inFlight > l.limit)
            violations.push(`inFlight ${e.inFlight} > limit ${l.limit}`);
        });
        const settle = () => new Promise<void>((r) => setImmediate(r));
        const held: ConcurrencyPermit[] = [];
        const answers: (ConcurrencyDecision | undefined)[] = [];
        let evicted = 0;
        for (const op of ops) {
          if (op.kind === 'acquire') {
            const i = answers.push(undefined) - 1;
            void l.acquire({ priority: op.priority }).then((d) => {
              answers[i] = d;
              if (d.allowed) held.push(d);
            });
          } else if (op.kind === 'release') {
            if (held.length > 0) held.splice(op.index % held.length, 1)[0]!.release();
          } else if (op.kind === 'update') {
            const before = l.waiting;
            const queueFull = answers.filter((d) => d?.reason === 'queue-full').length;
            l.update({
              ...(op.limit === undefined ? {} : { limit: op.limit }),
              ...(op.maxQueue === undefined ? {} : { maxQueue: op.maxQueue }),
            });
            await settle();
            const excess = op.maxQueue === undefined ? 0 : Math.max(0, before - op.maxQueue);
            evicted += excess;
            const nowFull = answers.filter((d) => d?.reason === 'queue-full').length;
            if (nowFull - queueFull !== excess)
              violations.push(`${nowFull - queueFull} refused, excess ${excess}`);
          } else clock.advance(op.ms);
          await settle();
          if (l.waiting > l.options.maxQueue) violations.push(`${l.waiting} waiting > ${l.options.maxQueue}`);
          // Factor 1, cost 1: a free slot never stays free while someone waits (a raised limit admits at once).
          if (l.waiting > 0 && l.inFlight < l.limit)
            violations.push(`${l.waiting} waiting with ${l.inFlight} of ${l.limit} in flight`);
        }
        while (held.length > 0 || l.waiting > 0) {
          while (held.length > 0) held.pop()!.release();
          clock.advance(10);
          await settle();
        }
        expect(violations).toEqual([]);
        expect(answers.every((d) => d !== undefined)).toBe(true);
        expect(l.inFlight).toBe(0);
        expect(clock.pendingTimers).toBe(0);
        totalEvicted += evicted;
      }),
      { numRuns: 150 },
    );
    // The runs did lower the queue below its waiters (the case under test), not only raise it.
    expect(totalEvicted).toBeGreaterThan(0);
  });

  it('admits waiters in priority order when slots free one at a time', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('critical' as const, 'normal' as const, 'sheddable' as const), {
          minLength: 1,
          maxLength: 20,
        }),
        async (priorities) => {
          const clock = new ManualClock();
          const l = new ConcurrencyLimiter({ limit: 1, clock, maxWaitMs: Infinity });
          const first = await l.acquire();
          const order: number[] = [];
          const permits: ConcurrencyPermit[] = [];
          const ps = priorities.map((p) =>
            l.acquire({ priority: p }).then((d) => {
              if (d.allowed) {
                order.push(priorityLevel(p));
                permits.push(d);
              }
            }),
          );
          if (first.allowed) first.release();
          for (let i = 0; i < ps.length; i++) {
            await new Promise<void>((r) => setImmediate(r));
            permits.shift()?.release();
          }
          await Promise.all(ps);
          expect(order).toHaveLength(priorities.length);
          expect(order).toEqual([...order].sort((a, b) => b - a));
        },
      ),
      { numRuns: 50 },
    );
  });
});
