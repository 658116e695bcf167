import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createGuard } from '../../../src/adapters/core.js';
import { ManualClock } from '../../../src/clock.js';
import { isConfigError } from '../../../src/errors.js';
import { ManualFactor } from '../../../src/limiters/factor.js';
import { FixedWindow } from '../../../src/limiters/fixed-window.js';
import { createLimiter, KeyedWindowLimiter } from '../../../src/limiters/keyed-limiter.js';
import { SlidingWindowCounter } from '../../../src/limiters/sliding-window.js';

describe("createLimiter({ algorithm: 'fixed-window' | 'sliding-window' })", () => {
  it('returns a KeyedWindowLimiter; a bad algorithm is a ConfigError naming it', () => {
    const clock = new ManualClock();
    expect(createLimiter({ algorithm: 'fixed-window', limit: 5, windowMs: 1000, clock })).toBeInstanceOf(
      KeyedWindowLimiter,
    );
    let err: unknown;
    try {
      createLimiter({ algorithm: 'leaky' as never, ratePerSec: 1, burst: 1 });
    } catch (e) {
      err = e;
    }
    expect(isConfigError(err)).toBe(true);
    expect((err as Error).message).toMatch(/`algorithm`/);
  });

  for (const [algorithm, Single] of [
    ['fixed-window', FixedWindow],
    ['sliding-window', SlidingWindowCounter],
  ] as const) {
    it(`${algorithm}: each key decides exactly as its own single-key limiter`, () => {
      const op = fc.record({
        key: fc.integer({ min: 0, max: 3 }),
        cost: fc.constantFrom(0.5, 1, 2),
        dt: fc.integer({ min: 0, max: 700 }),
        f: fc.option(fc.constantFrom(0, 0.3, 0.5, 1), { nil: undefined }),
        peek: fc.boolean(),
      });
      fc.assert(
        fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
          const clock = new ManualClock();
          const factor = new ManualFactor(1);
          const keyed = createLimiter({ algorithm, limit: 4, windowMs: 1000, clock, factor, maxKeys: 10 });
          const singles = new Map<number, InstanceType<typeof Single>>();
          for (const o of ops) {
            clock.advance(o.dt);
            if (o.f !== undefined) factor.set(o.f);
            let single = singles.get(o.key);
            if (single === undefined) {
              single = new Single({ limit: 4, windowMs: 1000, clock, factor });
              singles.set(o.key, single);
            }
            const a = o.peek
              ? keyed.peek(`k${o.key}`, { cost: o.cost })
              : keyed.take(`k${o.key}`, { cost: o.cost });
            const b = o.peek ? single.peek(o.cost) : single.take(o.cost);
            expect({ ...a, scope: undefined }).toEqual({ ...b, scope: undefined });
          }
        }),
      );
    });
  }

  it('stays within maxKeys, dropping keys whose windows have run out first', () => {
    const clock = new ManualClock();
    const l = createLimiter({ algorithm: 'sliding-window', limit: 2, windowMs: 1000, clock, maxKeys: 50 });
    l.take('hot');
    l.take('hot');
    for (let i = 0; i < 500; i++) {
      l.take(`k${i}`);
      l.take('hot');
      expect(l.size).toBeLessThanOrEqual(50);
    }
    expect(l.take('hot').allowed).toBe(false);
  });

  it('priority applies through the effective factor', () => {
    const clock = new ManualClock();
    const l = createLimiter({ algorithm: 'fixed-window', limit: 10, windowMs: 1000, clock, factor: 0.25 });
    expect(l.take('a', { cost: 3, priority: 'critical' }).allowed).toBe(true); // 10·√0.25 = 5
    expect(l.take('b', { cost: 3 }).allowed).toBe(false); // 10·0.25 = 2.5
  });

  it('stands in the HTTP guard: 3 per window per client, then 429 with Retry-After to the next window', () => {
    const clock = new ManualClock(500);
    const limiter = createLimiter({ algorithm: 'fixed-window', limit: 3, windowMs: 60_000, clock });
    const guard = createGuard({ limiter });
    const req = (ip: string) =>
      ({ url: '/', method: 'GET', headers: {}, socket: { remoteAddress: ip } }) as unknown as IncomingMessage;
    const res = () => {
      const r = new EventEmitter() as EventEmitter & { headers: Record<string, string>; destroyed: boolean };
      r.headers = {};
      r.destroyed = false;
      (r as unknown as { setHeader: (k: string, v: string) => unknown }).setHeader = (k, v) => {
        r.headers[k] = v;
        return r;
      };
      return r as unknown as ServerResponse;
    };
    const kinds = Array.from({ length: 4 }, () => {
      const o = guard.check(req('198.51.100.7'), res());
      if (o instanceof Promise) throw new Error('expected a synchronous outcome');
      return o;
    });
    expect(kinds.map((o) => o.kind)).toEqual(['pass', 'pass', 'pass', 'refused']);
    const refusal = kinds[3]!;
    if (refusal.kind !== 'refused') throw new Error('unreachable');
    expect(refusal.refusal.status).toBe(429);
    expect(refusal.refusal.decision.retryAfterMs).toBeCloseTo(59_500, 6);
    expect(refusal.refusal.retryAfterSec).toBe(60);
    const other = guard.check(req('198.51.100.8'), res());
    expect(other instanceof Promise ? 'async' : other.kind).toBe('pass');
  });
});
