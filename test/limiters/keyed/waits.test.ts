import { setMaxListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { type Clock, ManualClock, type TimerOptions } from '../../../src/clock.js';
import { isAbortError, isConfigError } from '../../../src/errors.js';
import { ManualFactor } from '../../../src/limiters/factor.js';
import { createLimiter, type KeyedDecision } from '../../../src/limiters/keyed-limiter.js';

/** Lets promise callbacks run (no time passes on the ManualClock). */
const flush = () => new Promise<void>((r) => setImmediate(r));

interface Tracked {
  decision?: KeyedDecision;
  error?: unknown;
  at?: number;
}

function track(clock: ManualClock, p: Promise<KeyedDecision>): Tracked {
  const t: Tracked = {};
  p.then(
    (d) => {
      t.decision = d;
      t.at = clock.now();
    },
    (e) => {
      t.error = e;
      t.at = clock.now();
    },
  );
  return t;
}

/** Advances in steps of `stepMs`, letting callbacks run after each step. */
async function advance(clock: ManualClock, ms: number, stepMs = 100): Promise<void> {
  for (let left = ms; left > 0; left -= stepMs) {
    clock.advance(Math.min(stepMs, left));
    await flush();
  }
}

const admitted = (ts: Tracked[]) => ts.filter((t) => t.decision?.allowed === true).length;

describe('KeyedLimiter.acquire follows the factor', () => {
  it('a cut to 0 admits nobody more; waiters wait (no deadline) and settle on abort', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const limiter = createLimiter({ ratePerSec: 10, burst: 10, clock, factor });
    const ac = new AbortController();
    setMaxListeners(0, ac.signal);
    const ts = Array.from({ length: 100 }, () => track(clock, limiter.acquire('k', { signal: ac.signal })));
    await flush();
    expect(admitted(ts)).toBe(10);
    await advance(clock, 1000);
    expect(admitted(ts)).toBe(20);
    factor.set(0);
    await advance(clock, 9000);
    expect(admitted(ts)).toBe(20); // 0.1 admitted 90 more here
    expect(limiter.waiting).toBe(80);
    ac.abort();
    await flush();
    expect(ts.every((t) => t.at !== undefined)).toBe(true);
    expect(ts.filter((t) => isAbortError(t.error)).length).toBe(80);
    // The 80 aborted reservations were refunded: the balance is back at 0, not -80.
    factor.set(1);
    expect(limiter.peek('k').allowed).toBe(false);
    clock.advance(1000);
    expect(limiter.peek('k', { cost: 10 }).allowed).toBe(true);
  });

  it('a cut to 0 refuses at once the waiters that have a deadline (as shed), refunding them', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const limiter = createLimiter({ ratePerSec: 10, burst: 10, clock, factor });
    const ts = Array.from({ length: 30 }, () => track(clock, limiter.acquire('k', { maxWaitMs: 5000 })));
    await flush();
    expect(admitted(ts)).toBe(10);
    factor.set(0);
    await flush();
    const refused = ts.filter((t) => t.decision?.allowed === false);
    expect(refused.length).toBe(20);
    expect(refused.every((t) => t.decision!.reason === 'shed' && t.at === 0)).toBe(true);
    expect(limiter.waiting).toBe(0);
    // All 20 reservations went back: the balance is what 10 admissions left (0), not -20.
    factor.set(1);
    clock.advance(1000);
    expect(limiter.peek('k', { cost: 10 }).allowed).toBe(true);
  });

  it('a recovery from 0.2 to 1 brings the waiters forward (last one at ~11 s, not 49 s)', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(0.2);
    const limiter = createLimiter({ ratePerSec: 10, burst: 10, clock, factor });
    const ts = Array.from({ length: 100 }, () => track(clock, limiter.acquire('k')));
    await flush();
    expect(admitted(ts)).toBe(2); // capacity 2 at 0.2
    await advance(clock, 1000, 50);
    expect(admitted(ts)).toBe(4); // 2 per second at 0.2
    factor.set(1);
    await advance(clock, 12_000, 50);
    expect(admitted(ts)).toBe(100);
    const last = Math.max(...ts.map((t) => t.at!));
    // 96 left at 10 per second from t = 1 s: the last is due at 10.6 s.
    expect(last).toBeGreaterThanOrEqual(10_600);
    expect(last).toBeLessThanOrEqual(10_650);
  });

  it('a factor of 5.6e-305 still settles every waiter', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const limiter = createLimiter({ ratePerSec: 10, burst: 1, clock, factor });
    const bounded = [limiter.acquire('k'), limiter.acquire('k', { maxWaitMs: 60_000 })].map((p) =>
      track(clock, p),
    );
    const open = track(clock, limiter.acquire('k'));
    await flush();
    factor.set(5.6e-305);
    await flush();
    // The bounded waiter cannot make its deadline: refused now. The others wait for the factor.
    expect(bounded[1]!.decision).toMatchObject({ allowed: false, reason: 'shed' });
    expect(bounded[0]!.decision?.allowed).toBe(true);
    expect(open.at).toBeUndefined();
    factor.set(1);
    await advance(clock, 200, 10);
    expect(open.decision?.allowed).toBe(true);
    expect(limiter.waiting).toBe(0);
  });

  it('a waiter is never admitted before its tokens are there, whatever the factor does', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock, factor });
    const a = track(clock, limiter.acquire('k'));
    const b = track(clock, limiter.acquire('k'));
    await flush();
    expect(a.decision?.allowed).toBe(true);
    await advance(clock, 500, 50);
    factor.set(0.5); // 0.5 token paid at 1/s, the other 0.5 at 0.5/s: due at 1.5 s
    await advance(clock, 2000, 50);
    expect(b.at).toBe(1500);
  });

  it('close rejects the waiters with an AbortError', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock });
    limiter.take('k');
    const t = track(clock, limiter.acquire('k'));
    limiter.close();
    await flush();
    expect(isAbortError(t.error)).toBe(true);
  });

  it('delete refuses the key’s waiters with retryAfterMs 0', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock });
    limiter.take('k');
    const t = track(clock, limiter.acquire('k'));
    limiter.delete('k');
    await flush();
    expect(t.decision).toMatchObject({ allowed: false, retryAfterMs: 0 });
    expect(limiter.take('k').allowed).toBe(true);
  });

  it('a key with waiters is not evicted while others can be', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock, maxKeys: 2 });
    limiter.take('k');
    const t = track(clock, limiter.acquire('k'));
    for (let i = 0; i < 10; i++) limiter.take(`other${i}`);
    await advance(clock, 1000, 100);
    expect(t.decision?.allowed).toBe(true);
  });
});

describe('KeyedLimiter.acquire keeps the process alive', () => {
  it('arms its timer with keepAlive', async () => {
    const inner = new ManualClock();
    const seen: (TimerOptions | undefined)[] = [];
    const clock: Clock = {
      now: () => inner.now(),
      setTimeout: (fn, ms, options) => {
        seen.push(options);
        return inner.setTimeout(fn, ms, options);
      },
    };
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock });
    limiter.take('k');
    const p = limiter.acquire('k');
    expect(seen).toEqual([{ keepAlive: true }]);
    inner.advance(1000);
    expect((await p).allowed).toBe(true);
  });
});

describe('bad input', () => {
  it("take('k', null) is a ConfigError naming options", () => {
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock: new ManualClock() });
    for (const bad of [null, 5, 'x']) {
      let err: unknown;
      try {
        limiter.take('k', bad as never);
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toContain('options');
      expect(() => limiter.peek('k', bad as never)).toThrow(/options/);
      expect(() => limiter.acquire('k', bad as never)).toThrow(/options/);
    }
  });
});
