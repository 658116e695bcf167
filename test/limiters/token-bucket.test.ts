import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isAbortError, isConfigError } from '../../src/errors.js';
import { TokenBucket } from '../../src/limiters/token-bucket.js';
import type { Decision } from '../../src/limiters/types.js';

function bucket(ratePerSec: number, burst: number, extra: { factor?: number; initialTokens?: number } = {}) {
  const clock = new ManualClock(1_000);
  return { clock, b: new TokenBucket({ ratePerSec, burst, clock, ...extra }) };
}

/** Lets promise callbacks run (no time passes on the ManualClock). */
const flush = () => new Promise<void>((r) => setImmediate(r));

function track(p: Promise<Decision>) {
  const s: { decision?: Decision; error?: unknown } = {};
  p.then(
    (d) => {
      s.decision = d;
    },
    (e) => {
      s.error = e;
    },
  );
  return s;
}

describe('TokenBucket: take and lazy refill', () => {
  it('starts full, takes synchronously and refills lazily with elapsed time', () => {
    const { clock, b } = bucket(10, 5);
    for (let i = 0; i < 5; i++) expect(b.take().allowed).toBe(true);
    const d = b.take();
    expect(d).toMatchObject({ allowed: false, reason: 'limited', remaining: 0, limit: 5, factor: 1 });
    expect(d.retryAfterMs).toBeCloseTo(100, 9);
    clock.advance(250); // 2.5 tokens
    expect(b.tokens).toBeCloseTo(2.5, 9);
    expect(b.take(2).allowed).toBe(true);
    expect(b.take(1).allowed).toBe(false);
    clock.advance(10_000);
    expect(b.tokens).toBe(5); // never above burst
  });

  it('takes fractional costs and reports remaining and resetMs', () => {
    const { b } = bucket(2, 3);
    const d = b.take(0.75);
    expect(d.allowed).toBe(true);
    expect(d.remaining).toBeCloseTo(2.25, 12);
    expect(d.resetMs).toBeCloseTo(375, 9); // 0.75 tokens at 2/s
    const p = b.peek(2.25);
    expect(p.allowed).toBe(true);
    expect(b.tokens).toBeCloseTo(2.25, 12); // peek charges nothing
  });

  it('starts from initialTokens', () => {
    const { b } = bucket(1, 4, { initialTokens: 1 });
    expect(b.take(1).allowed).toBe(true);
    expect(b.take(1).allowed).toBe(false);
  });

  const cases: Array<[rate: number, burst: number, cost: number]> = [
    [3, 1, 0.7],
    [3, 2, 1.3],
    [7, 10, 3],
    [0.5, 1, 1],
    [1000, 5, 0.1],
    [13, 13, 13],
    [0.3, 2, 0.45],
    [123.456, 50, 7.77],
  ];
  it.each(cases)('retryAfterMs is exact (rate %s/s, burst %s, cost %s)', (rate, burst, cost) => {
    const { clock, b } = bucket(rate, burst);
    // Drain to a ragged level, then ask repeatedly.
    b.take(burst);
    for (let round = 0; round < 5; round++) {
      const d = b.take(cost);
      expect(d.allowed).toBe(false);
      const r = d.retryAfterMs;
      expect(r).toBeGreaterThan(0);
      expect(r).toBeCloseTo((cost - b.tokens) / (rate / 1000), 6);
      const t0 = clock.now();
      if (r > 1) {
        clock.set(t0 + r - 1);
        expect(b.peek(cost).allowed).toBe(false);
      }
      clock.set(t0 + r);
      expect(b.take(cost).allowed).toBe(true);
      clock.advance(round * 37.3); // a different starting level each round
      if (b.tokens >= cost) b.take(b.tokens);
    }
  });
});

describe('TokenBucket: factor scaling', () => {
  it('scales rate and capacity by the factor', () => {
    const { clock, b } = bucket(10, 20, { factor: 0.5 });
    expect(b.tokens).toBe(10);
    expect(b.take(10)).toMatchObject({ allowed: true, limit: 10, factor: 0.5 });
    const d = b.take(1);
    expect(d).toMatchObject({ allowed: false, reason: 'shed', limit: 10 });
    expect(d.retryAfterMs).toBeCloseTo(200, 9); // 1 token at 5/s
    clock.advance(10_000);
    expect(b.tokens).toBe(10);
  });

  it('applies a change from its moment on: old rate up to now, then the new one', () => {
    const { clock, b } = bucket(10, 100);
    b.take(100);
    clock.advance(1000); // +10 at f = 1
    b.setFactor(0.25);
    clock.advance(1000); // +2.5 at f = 0.25
    expect(b.tokens).toBeCloseTo(12.5, 9);
    b.setFactor(1);
    clock.advance(500); // +5
    expect(b.tokens).toBeCloseTo(17.5, 9);
  });

  it('clamps to the new capacity when shrinking and creates no tokens when growing', () => {
    const { clock, b } = bucket(10, 20);
    b.setFactor(0.25);
    expect(b.tokens).toBe(5);
    b.setFactor(1);
    expect(b.tokens).toBe(5);
    clock.advance(100);
    expect(b.tokens).toBeCloseTo(6, 9);
  });

  it('refuses everything at factor 0 with retryAfterMs Infinity and reason shed', () => {
    const { clock, b } = bucket(10, 20);
    b.setFactor(0);
    const d = b.take(0.001);
    expect(d).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity, limit: 0, factor: 0 });
    clock.advance(60_000);
    expect(b.take().allowed).toBe(false);
    expect(b.tokens).toBe(0);
  });

  it('refuses a cost above the scaled capacity with Infinity (shed), one within it with a finite wait', () => {
    const { b } = bucket(10, 20, { factor: 0.5 });
    expect(b.take(11)).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: Infinity });
    b.take(10);
    expect(b.take(10).retryAfterMs).toBeCloseTo(2000, 9);
  });
});

describe('TokenBucket: acquire', () => {
  it('serves waiters in FIFO order at the refill rate', async () => {
    const { clock, b } = bucket(10, 2, { initialTokens: 0 });
    const order: number[] = [];
    const ps = [1, 2, 1].map((cost, i) =>
      b.acquire(cost).then((d) => {
        expect(d.allowed).toBe(true);
        order.push(i);
      }),
    );
    expect(b.waiting).toBe(3);
    expect(b.queuedCost).toBe(4);
    // Served at 100, 300 and 400 ms: each one's cost accrues after the previous one's.
    const steps: Array<[number, number[]]> = [
      [99, []],
      [1, [0]],
      [199, [0]],
      [1, [0, 1]],
      [99, [0, 1]],
      [1, [0, 1, 2]],
    ];
    for (const [ms, served] of steps) {
      clock.advance(ms);
      await flush();
      expect(order).toEqual(served);
    }
    await Promise.all(ps);
    expect(b.waiting).toBe(0);
    expect(b.queuedCost).toBe(0);
  });

  it('queues a waiter whose cumulative wait exceeds the capacity but not its maxWaitMs', async () => {
    const { clock, b } = bucket(1, 1, { initialTokens: 0 });
    const first = track(b.acquire(1, { maxWaitMs: 5000 }));
    const second = track(b.acquire(1, { maxWaitMs: 5000 }));
    expect(b.waiting).toBe(2);
    clock.advance(1000);
    await flush();
    expect(first.decision?.allowed).toBe(true);
    expect(second.decision).toBeUndefined();
    clock.advance(1000);
    await flush();
    expect(second.decision?.allowed).toBe(true);
  });

  it('admits at once when tokens are there, refuses at once when the wait would exceed maxWaitMs', async () => {
    const { b } = bucket(10, 2);
    await expect(b.acquire(2)).resolves.toMatchObject({ allowed: true });
    const d = await b.acquire(1, { maxWaitMs: 99 });
    expect(d).toMatchObject({ allowed: false, reason: 'limited' });
    expect(d.retryAfterMs).toBeCloseTo(100, 9);
    expect(b.waiting).toBe(0);
    const ok = track(b.acquire(1, { maxWaitMs: 100 }));
    expect(b.waiting).toBe(1);
    expect(ok.decision).toBeUndefined();
  });

  it('counts the queue ahead when deciding whether a wait fits maxWaitMs', async () => {
    const { b } = bucket(10, 5, { initialTokens: 0 });
    track(b.acquire(3)); // served at 300 ms
    const d = await b.acquire(2, { maxWaitMs: 499 }); // would be served at 500 ms
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeCloseTo(500, 9);
  });

  it('an abort rejects with AbortError and those behind move up', async () => {
    const { clock, b } = bucket(10, 5, { initialTokens: 0 });
    const ac = new AbortController();
    const first = track(b.acquire(3, { signal: ac.signal }));
    const second = track(b.acquire(1));
    ac.abort(new Error('client went away'));
    await flush();
    expect(isAbortError(first.error)).toBe(true);
    expect((first.error as Error).cause).toEqual(new Error('client went away'));
    expect(b.waiting).toBe(1);
    clock.advance(99);
    await flush();
    expect(second.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(second.decision?.allowed).toBe(true);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const { b } = bucket(10, 5);
    const ac = new AbortController();
    ac.abort();
    const err = await b.acquire(1, { signal: ac.signal }).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect(b.tokens).toBe(5); // nothing taken
  });

  it('an abort after admission changes nothing', async () => {
    const { b } = bucket(10, 5);
    const ac = new AbortController();
    const d = await b.acquire(1, { signal: ac.signal });
    ac.abort();
    expect(d.allowed).toBe(true);
    expect(b.tokens).toBe(4);
  });

  it('a factor cut pushes waiters later and refuses those whose new projection passes their deadline', async () => {
    const { clock, b } = bucket(10, 10, { initialTokens: 0 });
    const a = track(b.acquire(2, { maxWaitMs: 1000 })); // 200 ms at f = 1
    const c = track(b.acquire(2, { maxWaitMs: 600 })); // 400 ms at f = 1
    clock.advance(100); // 1 token
    b.setFactor(0.5); // 5/s: a at +200 ms (300 total), c at +600 ms (700 > 600 deadline)
    await flush();
    expect(c.decision).toMatchObject({ allowed: false, reason: 'shed' });
    expect(c.decision?.retryAfterMs).toBeCloseTo(600, 9);
    clock.advance(199);
    await flush();
    expect(a.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(a.decision?.allowed).toBe(true);
  });

  it('a factor rise serves waiters sooner', async () => {
    const { clock, b } = bucket(10, 10, { initialTokens: 0, factor: 0.1 });
    const a = track(b.acquire(1)); // 1000 ms at 1/s
    clock.advance(500); // 0.5 tokens
    b.setFactor(1); // the other 0.5 in 50 ms
    clock.advance(49);
    await flush();
    expect(a.decision).toBeUndefined();
    clock.advance(1);
    await flush();
    expect(a.decision?.allowed).toBe(true);
  });

  it('a waiter at factor 0 waits until the factor rises', async () => {
    const { clock, b } = bucket(10, 10, { initialTokens: 0 });
    b.setFactor(0);
    const a = track(b.acquire(1));
    clock.advance(60_000);
    await flush();
    expect(a.decision).toBeUndefined();
    b.setFactor(1);
    clock.advance(100);
    await flush();
    expect(a.decision?.allowed).toBe(true);
  });

  it('never starves waiters: a synchronous take cannot jump ahead', async () => {
    const { clock, b } = bucket(10, 5, { initialTokens: 0 });
    const a = track(b.acquire(2));
    clock.advance(100); // 1 token, less than the waiter needs
    const d = b.take(1);
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeCloseTo(200, 9); // behind the 2 tokens of the waiter
    clock.advance(100);
    await flush();
    expect(a.decision?.allowed).toBe(true);
    expect(b.take(1).allowed).toBe(false);
    clock.advance(100);
    expect(b.take(1).allowed).toBe(true);
  });

  it('retryAfterMs of a take behind waiters is exact', () => {
    const { clock, b } = bucket(3, 2, { initialTokens: 0 });
    track(b.acquire(1.3));
    track(b.acquire(0.9));
    const r = b.take(0.7).retryAfterMs; // 2.9 tokens at 3/s
    expect(r).toBeCloseTo(2900 / 3, 9);
    const t0 = clock.now();
    clock.set(t0 + r - 1);
    expect(b.take(0.7).allowed).toBe(false);
    clock.set(t0 + r);
    expect(b.take(0.7).allowed).toBe(true);
  });
});

describe('TokenBucket: validation', () => {
  const clock = new ManualClock();
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    [
      'NaN rate',
      { ratePerSec: Number.NaN, burst: 1 },
      /`ratePerSec` to be a finite number > 0, got `NaN` \(number\)/,
    ],
    ['negative rate', { ratePerSec: -1, burst: 1 }, /`ratePerSec` to be a finite number > 0, got `-1`/],
    [
      'infinite rate',
      { ratePerSec: Infinity, burst: 1 },
      /`ratePerSec` to be a finite number > 0, got `Infinity`/,
    ],
    ['zero burst', { ratePerSec: 1, burst: 0 }, /`burst` to be a finite number > 0, got `0` \(number\)/],
    [
      'string burst',
      { ratePerSec: 1, burst: '5' },
      /`burst` to be a finite number > 0, got `"5"` \(string\)/,
    ],
    [
      'factor above 1',
      { ratePerSec: 1, burst: 1, factor: 1.5 },
      /`factor` to be a finite number from 0 to 1, got `1.5`/,
    ],
    [
      'factor below 0',
      { ratePerSec: 1, burst: 1, factor: -0.1 },
      /`factor` to be a finite number from 0 to 1, got `-0.1`/,
    ],
    [
      'initialTokens above capacity',
      { ratePerSec: 1, burst: 4, factor: 0.5, initialTokens: 3 },
      /`initialTokens` to be a finite number from 0 to 2, got `3`/,
    ],
    [
      'unknown option',
      { ratePerSec: 1, burst: 1, rate: 5 },
      /`TokenBucket.rate` to be one of the known options \(ratePerSec, burst, clock, factor, initialTokens\), got `5`/,
    ],
  ];
  it.each(bad)('%s throws a ConfigError naming option, value and what is allowed', (_, options, message) => {
    let err: unknown;
    try {
      new TokenBucket({ clock, ...options } as never);
    } catch (e) {
      err = e;
    }
    expect(isConfigError(err)).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it('validates cost on take, peek and acquire', () => {
    const b = new TokenBucket({ ratePerSec: 1, burst: 3, clock });
    expect(() => b.take(4)).toThrow(
      /`cost` to be a finite number > 0 and <= burst \(3\), got `4` \(number\)/,
    );
    expect(() => b.take(0)).toThrow(/`cost` .* got `0`/);
    expect(() => b.peek(Number.NaN)).toThrow(/`cost` .* got `NaN`/);
    expect(() => b.take(-1)).toThrow(/`cost` .* got `-1`/);
    expect(() => b.acquire(Infinity)).toThrow(/`cost` .* got `Infinity`/);
    expect(() => b.acquire(1, { maxWaitMs: -5 })).toThrow(
      /`maxWaitMs` to be a number >= 0 \(or Infinity\), got `-5`/,
    );
  });

  it('validates setFactor and leaves the state alone on a bad value', () => {
    const b = new TokenBucket({ ratePerSec: 1, burst: 3, clock });
    expect(() => b.setFactor(2)).toThrow(/`factor` to be a finite number from 0 to 1, got `2`/);
    expect(() => b.setFactor(Number.NaN)).toThrow(/got `NaN`/);
    expect(b.factor).toBe(1);
  });
});

describe('TokenBucket: a late timer', () => {
  it('serves due waiters before deciding a take, when the clock has not fired the timer yet', async () => {
    // A clock whose timers never fire on their own: what a busy event loop looks like.
    let now = 0;
    const clock = { now: () => now, setTimeout: () => ({ cancel() {} }) };
    const b = new TokenBucket({ ratePerSec: 10, burst: 5, clock, initialTokens: 0 });
    const a = track(b.acquire(1));
    now = 300; // 3 tokens; the waiter's timer (due at 100 ms) has not run
    const d = b.take(1);
    expect(d.allowed).toBe(true);
    expect(d.remaining).toBeCloseTo(1, 9);
    await flush();
    expect(a.decision?.allowed).toBe(true);
    expect(b.waiting).toBe(0);
  });
});
