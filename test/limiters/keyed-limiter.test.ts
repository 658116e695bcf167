import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isAbortError, isConfigError } from '../../src/errors.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import {
  createLimiter,
  FACTOR_LOG_SIZE,
  type KeyedLimiterOptions,
} from '../../src/limiters/keyed-limiter.js';

function setup(options: Partial<KeyedLimiterOptions> = {}) {
  const clock = new ManualClock();
  const factor = new ManualFactor(1);
  const limiter = createLimiter({ ratePerSec: 10, burst: 10, clock, factor, ...options });
  return { clock, factor, limiter };
}

/** The tokens a key holds now, read through the public API: the largest cost peek admits. */
function tokensOf(limiter: ReturnType<typeof createLimiter>, key: string): number {
  const d = limiter.peek(key, { cost: 1e-6 });
  return d.allowed ? d.remaining + 1e-6 : d.remaining;
}

describe('createLimiter: one bucket per key', () => {
  it('admits up to the burst, then refuses as limited with an exact retryAfterMs', () => {
    const { clock, limiter } = setup({ ratePerSec: 3, burst: 5 });
    for (let i = 0; i < 5; i++) expect(limiter.take('a').allowed).toBe(true);
    const d = limiter.take('a');
    expect(d).toMatchObject({ allowed: false, reason: 'limited', scope: 'key', limit: 5, factor: 1 });
    expect(d.retryAfterMs).toBeCloseTo(1000 / 3, 9);
    // Other keys are independent.
    expect(limiter.take('b').allowed).toBe(true);
    // One millisecond early: refused. Exactly on time: admitted.
    clock.advance(d.retryAfterMs - 1);
    expect(limiter.take('a').allowed).toBe(false);
    clock.advance(1);
    const ok = limiter.take('a');
    expect(ok.allowed).toBe(true);
    expect(ok.reason).toBe('ok');
    expect(ok.remaining).toBeCloseTo(0, 9);
  });

  it('exact retryAfterMs for a fractional cost and rate', () => {
    const { clock, limiter } = setup({ ratePerSec: 7, burst: 2.5 });
    expect(limiter.take('k', { cost: 2.5 }).allowed).toBe(true);
    const d = limiter.take('k', { cost: 1.3 });
    expect(d.retryAfterMs).toBeCloseTo((1.3 / 7) * 1000, 9);
    clock.advance(d.retryAfterMs);
    expect(limiter.take('k', { cost: 1.3 }).allowed).toBe(true);
  });

  it('peek neither charges nor creates the key', () => {
    const { limiter } = setup();
    expect(limiter.peek('a', { cost: 10 }).allowed).toBe(true);
    expect(limiter.size).toBe(0);
    limiter.take('a', { cost: 4 });
    expect(limiter.peek('a', { cost: 6 })).toMatchObject({ allowed: true, remaining: 0 });
    expect(limiter.peek('a', { cost: 6 })).toMatchObject({ allowed: true, remaining: 0 });
    expect(limiter.peek('a', { cost: 7 }).allowed).toBe(false);
  });

  it('delete and clear forget keys; size counts them', () => {
    const { limiter } = setup();
    limiter.take('a', { cost: 10 });
    limiter.take('b', { cost: 10 });
    expect(limiter.size).toBe(2);
    limiter.delete('a');
    expect(limiter.size).toBe(1);
    expect(limiter.take('a', { cost: 10 }).allowed).toBe(true);
    limiter.clear();
    expect(limiter.size).toBe(0);
    expect(limiter.take('b', { cost: 10 }).allowed).toBe(true);
    expect(limiter.maxKeys).toBe(100_000);
  });
});

describe('tiers', () => {
  it('gives each key its own rate and burst, looked up once per bucket', () => {
    const calls: string[] = [];
    const { clock, limiter } = setup({
      ratePerSec: 1,
      burst: 2,
      tiers: (key) => {
        calls.push(key);
        return key.startsWith('premium:') ? { ratePerSec: 100, burst: 20 } : undefined;
      },
    });
    for (let i = 0; i < 20; i++) expect(limiter.take('premium:1').allowed).toBe(true);
    const p = limiter.take('premium:1');
    expect(p.allowed).toBe(false);
    expect(p.limit).toBe(20);
    expect(p.retryAfterMs).toBeCloseTo(10, 9);
    expect(limiter.take('free:1', { cost: 2 }).allowed).toBe(true);
    const f = limiter.take('free:1');
    expect(f.limit).toBe(2);
    expect(f.retryAfterMs).toBeCloseTo(1000, 9);
    expect(calls).toEqual(['premium:1', 'free:1']);
    // cost is checked against the key's own burst
    expect(() => limiter.take('free:2', { cost: 3 })).toThrow(/burst \(2\)/);
    expect(limiter.take('premium:2', { cost: 3 }).allowed).toBe(true);
    clock.advance(10);
    expect(limiter.take('premium:1').allowed).toBe(true);
  });

  it('rejects a bad tier with a ConfigError naming tiers(key)', () => {
    const { limiter } = setup({ tiers: () => ({ ratePerSec: 5, burst: -1 }) });
    let err: unknown;
    try {
      limiter.take('u1');
    } catch (e) {
      err = e;
    }
    expect(isConfigError(err)).toBe(true);
    expect((err as Error).message).toBe(
      'Expected `tiers("u1").burst` to be a finite number > 0, got `-1` (number)',
    );
    expect(limiter.size).toBe(0);
  });

  it('keeps many distinct tiers apart', () => {
    const { limiter } = setup({ tiers: (k) => ({ ratePerSec: 1, burst: Number(k) }), maxKeys: 50 });
    for (let round = 0; round < 3; round++) {
      for (let i = 1; i <= 200; i++) {
        const d = limiter.peek(String(i), { cost: i });
        expect(d.allowed).toBe(true);
        expect(d.limit).toBe(i);
        limiter.take(String(i), { cost: 0.5 });
      }
    }
    expect(limiter.size).toBe(50);
  });
});

describe('global bucket', () => {
  it('refuses as shed with scope global, without charging the key', () => {
    const { clock, limiter } = setup({ ratePerSec: 1, burst: 5, global: { ratePerSec: 2, burst: 3 } });
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('b').allowed).toBe(true);
    expect(limiter.take('c').allowed).toBe(true);
    const d = limiter.take('a');
    expect(d).toMatchObject({ allowed: false, reason: 'shed', scope: 'global' });
    expect(d.retryAfterMs).toBeCloseTo(500, 9);
    expect(d.remaining).toBeCloseTo(4, 9); // the key's own bucket, not charged
    expect(limiter.take('d').allowed).toBe(false);
    expect(limiter.size).toBe(3); // a key refused before it was ever charged is not stored
    clock.advance(500);
    expect(limiter.take('a')).toMatchObject({ allowed: true });
    expect(tokensOf(limiter, 'a')).toBeCloseTo(3.5, 9);
  });

  it("a key's own refusal does not charge the global bucket", () => {
    const { limiter } = setup({ ratePerSec: 1, burst: 1, global: { ratePerSec: 1, burst: 3 } });
    expect(limiter.take('a').allowed).toBe(true);
    for (let i = 0; i < 5; i++) expect(limiter.take('a')).toMatchObject({ allowed: false, scope: 'key' });
    expect(limiter.take('b').allowed).toBe(true);
    expect(limiter.take('c').allowed).toBe(true);
    expect(limiter.take('d')).toMatchObject({ allowed: false, scope: 'global' });
  });

  it('retryAfterMs covers both buckets when both are short', () => {
    const { clock, limiter } = setup({ ratePerSec: 1, burst: 2, global: { ratePerSec: 1, burst: 3 } });
    limiter.take('a', { cost: 2 });
    limiter.take('b', { cost: 1 });
    // a: 0 tokens (1 s for one), global: 0 tokens (1 s); ask for 2: a needs 2 s, global 2 s
    limiter.take('c', { cost: 0.5 });
    const d = limiter.take('a', { cost: 2 });
    expect(d.scope).toBe('key');
    expect(d.retryAfterMs).toBeCloseTo(2000, 9);
    clock.advance(d.retryAfterMs - 1);
    expect(limiter.take('a', { cost: 2 }).allowed).toBe(false);
    clock.advance(1);
    expect(limiter.take('a', { cost: 2 }).allowed).toBe(true);
  });

  it('scales with the factor', () => {
    const { factor, limiter } = setup({ ratePerSec: 100, burst: 100, global: { ratePerSec: 10, burst: 4 } });
    factor.set(0.5);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('b').allowed).toBe(true);
    const d = limiter.take('c');
    expect(d).toMatchObject({ allowed: false, scope: 'global', reason: 'shed' });
    expect(d.retryAfterMs).toBeCloseTo(200, 9); // one token at 10·0.5 per second
  });
});

describe('block period', () => {
  it('blocks a key refused N times in a row, with retryAfterMs the time left in the block', () => {
    const { clock, limiter } = setup({
      ratePerSec: 1,
      burst: 1,
      block: { afterRefusals: 3, durationMs: 5000 },
    });
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').reason).toBe('limited');
    expect(limiter.take('a').reason).toBe('limited');
    const b = limiter.take('a');
    expect(b).toMatchObject({ allowed: false, reason: 'blocked', scope: 'key', retryAfterMs: 5000 });
    clock.advance(1000); // the bucket has refilled, the block still holds
    expect(limiter.take('a')).toMatchObject({ reason: 'blocked', retryAfterMs: 4000 });
    expect(limiter.peek('a')).toMatchObject({ reason: 'blocked', retryAfterMs: 4000 });
    expect(limiter.take('b').allowed).toBe(true); // other keys unaffected
    clock.advance(3999);
    expect(limiter.take('a').reason).toBe('blocked');
    clock.advance(1);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').reason).toBe('limited'); // a new streak starts at 1
  });

  it('an admission ends the streak', () => {
    const { clock, limiter } = setup({
      ratePerSec: 1,
      burst: 1,
      block: { afterRefusals: 2, durationMs: 5000 },
    });
    limiter.take('a');
    expect(limiter.take('a').reason).toBe('limited');
    clock.advance(1000);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').reason).toBe('limited');
    expect(limiter.take('a').reason).toBe('blocked');
  });

  it('a block is never shorter than the wait for tokens', () => {
    const { limiter } = setup({ ratePerSec: 0.1, burst: 1, block: { afterRefusals: 1, durationMs: 50 } });
    limiter.take('a');
    const d = limiter.take('a');
    expect(d.reason).toBe('blocked');
    expect(d.retryAfterMs).toBeCloseTo(10_000, 6);
  });
});

describe('bounded memory', () => {
  it('evicts the least recently used key (CLOCK, second chance)', () => {
    const { limiter } = setup({ ratePerSec: 1e-6, burst: 2, maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) limiter.take(k);
    limiter.take('a'); // a is used again: second chance
    limiter.take('d'); // evicts b, the least recently used
    expect(limiter.size).toBe(3);
    expect(tokensOf(limiter, 'a')).toBeCloseTo(0, 6);
    expect(tokensOf(limiter, 'b')).toBeCloseTo(2, 6); // gone: a missing key is full
    expect(tokensOf(limiter, 'c')).toBeCloseTo(1, 6);
    expect(tokensOf(limiter, 'd')).toBeCloseTo(1, 6);
  });

  it('drops a full bucket before a used, non-full one', () => {
    const { clock, limiter } = setup({ ratePerSec: 1, burst: 1, maxKeys: 2 });
    limiter.take('a'); // a is the oldest key
    limiter.take('b');
    limiter.take('b'); // refused, but used: b has its reference bit
    clock.advance(900);
    limiter.take('a', { cost: 0.9 }); // a: 0 tokens, referenced
    clock.advance(100); // a: 0.1, b: full
    // Plain CLOCK would clear a's bit, then b's, and evict a; the full b goes first.
    limiter.take('c');
    expect(limiter.size).toBe(2);
    expect(tokensOf(limiter, 'a')).toBeCloseTo(0.1, 9);
    expect(tokensOf(limiter, 'c')).toBeCloseTo(0, 9);
  });

  it('a flood of distinct keys stays at maxKeys and spares a key in use', () => {
    const { clock, limiter } = setup({ ratePerSec: 1e-3, burst: 5, maxKeys: 100 });
    limiter.take('hot', { cost: 5 });
    for (let i = 0; i < 20_000; i++) {
      limiter.take(`10.0.${i >> 8}.${i & 255}`);
      expect(limiter.size).toBeLessThanOrEqual(100);
      if (i % 10 === 0) expect(limiter.take('hot').allowed).toBe(false);
      if (i % 1000 === 0) clock.advance(1);
    }
    expect(limiter.size).toBe(100);
  });
});

describe('factor changes', () => {
  it('accrue at the old rate up to the change, then at the new one', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    limiter.take('a', { cost: 10 });
    clock.advance(300);
    factor.set(0.5); // a: 3 tokens, capacity 5
    clock.advance(200); // +1 at 5/s
    expect(tokensOf(limiter, 'a')).toBeCloseTo(4, 9);
    const d = limiter.take('a', { cost: 4.5 });
    expect(d).toMatchObject({ allowed: false, limit: 5, factor: 0.5 });
    expect(d.retryAfterMs).toBeCloseTo(100, 9);
    clock.advance(d.retryAfterMs);
    expect(limiter.take('a', { cost: 4.5 }).allowed).toBe(true);
  });

  it('shrink then grow between two takes of an idle key: clamps, creates nothing', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    limiter.take('a', { cost: 1 });
    clock.advance(100); // full again: 10
    factor.set(0.2); // clamp to 2, the new capacity
    clock.advance(100); // still 2: full at this factor
    factor.set(1); // growth adds nothing
    clock.advance(100); // +1 at 10/s
    expect(tokensOf(limiter, 'a')).toBeCloseTo(3, 9);
    const d = limiter.take('a', { cost: 3.3 });
    expect(d.retryAfterMs).toBeCloseTo(30, 9);
    clock.advance(d.retryAfterMs - 1);
    expect(limiter.take('a', { cost: 3.3 }).allowed).toBe(false);
    clock.advance(1);
    expect(limiter.take('a', { cost: 3.3 }).allowed).toBe(true);
  });

  it('changes at the same instant as a take apply to it, in order', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    limiter.take('a', { cost: 1 }); // 9 at t = 0
    factor.set(0.2); // clamp to 2 at t = 0
    factor.set(1); // and back at t = 0: still 2
    expect(tokensOf(limiter, 'a')).toBeCloseTo(2, 9);
    // a key without a bucket is an idle one: clamped to 2 as well
    expect(limiter.take('b', { cost: 2.5 }).allowed).toBe(false);
    expect(limiter.take('b', { cost: 1.5 }).allowed).toBe(true);
    factor.set(0.1); // clamp both to 1
    factor.set(1);
    expect(tokensOf(limiter, 'a')).toBeCloseTo(1, 9);
    expect(tokensOf(limiter, 'b')).toBeCloseTo(0.5, 9);
    clock.advance(100);
    expect(tokensOf(limiter, 'a')).toBeCloseTo(2, 9);
    expect(tokensOf(limiter, 'b')).toBeCloseTo(1.5, 9);
  });

  it('a key without a bucket starts like one left idle: growth creates no tokens for it either', () => {
    const { clock, factor, limiter } = setup({
      ratePerSec: 10,
      burst: 10,
      tiers: (k) => (k === 'gold' ? { ratePerSec: 1, burst: 20 } : undefined),
    });
    limiter.take('old', { cost: 0.001 });
    clock.advance(1000);
    factor.set(0.1); // capacity 1
    clock.advance(1000);
    factor.set(1);
    clock.advance(200); // +2
    expect(tokensOf(limiter, 'old')).toBeCloseTo(3, 9);
    expect(tokensOf(limiter, 'new')).toBeCloseTo(3, 9);
    expect(limiter.take('new', { cost: 3 }).allowed).toBe(true);
    // a tier seen for the first time after the changes: full at 2 (20·0.1), then +0.2
    expect(tokensOf(limiter, 'gold')).toBeCloseTo(2.2, 9);
    clock.advance(10_000);
    expect(tokensOf(limiter, 'brand-new')).toBeCloseTo(10, 9);
  });

  it('take(key) without options (the hot path) replays a change made since the key was settled', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    limiter.take('a', { cost: 10 });
    clock.advance(300);
    factor.set(0.5); // a: 3 tokens, capacity 5
    clock.advance(200); // +1 at 5/s: 4 (at 5/s all along it would be 2.5)
    expect(limiter.take('a')).toMatchObject({ allowed: true, remaining: 3, limit: 5, factor: 0.5 });
    clock.advance(1000); // full at 5
    for (let i = 0; i < 5; i++) expect(limiter.take('a').allowed).toBe(true);
    const d = limiter.take('a');
    // 0 tokens: its fill level scaled up to factor 1 could not pay 1 either
    expect(d).toMatchObject({ allowed: false, reason: 'limited', remaining: 0, factor: 0.5 });
    expect(d.retryAfterMs).toBeCloseTo(200, 9);
    clock.advance(150); // 0.75 tokens, 1.5 scaled up to factor 1: the cut is the factor's
    expect(limiter.take('a')).toMatchObject({ allowed: false, reason: 'shed', factor: 0.5 });
  });

  it('a change at the instant of a hot-path take clamps what that take left', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    limiter.take('a'); // created: 9 at t = 0
    clock.advance(100);
    expect(limiter.take('a')).toMatchObject({ allowed: true, remaining: 9 }); // settled at t = 100
    factor.set(0.2); // at t = 100: clamp to 2
    expect(tokensOf(limiter, 'a')).toBeCloseTo(2, 9);
    expect(limiter.take('a')).toMatchObject({ allowed: true, remaining: 1, limit: 2 });
  });

  it('stays exact past the end of the change log', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    limiter.take('idle', { cost: 10 });
    let expected = 0;
    let f = 1;
    for (let i = 0; i < 3 * FACTOR_LOG_SIZE + 5; i++) {
      clock.advance(7);
      expected = Math.min(expected + 0.01 * f * 7, 10 * f);
      f = i % 3 === 0 ? 0.3 : i % 3 === 1 ? 0.9 : 0.6;
      factor.set(f);
      expected = Math.min(expected, 10 * f);
      if (i % 50 === 0) limiter.take(`other${i}`);
    }
    clock.advance(40);
    expected = Math.min(expected + 0.01 * f * 40, 10 * f);
    expect(tokensOf(limiter, 'idle')).toBeCloseTo(expected, 9);
  });

  it('refuses everything at factor 0, and stops following the source after close', () => {
    const { clock, factor, limiter } = setup();
    factor.set(0);
    expect(limiter.take('a')).toMatchObject({
      allowed: false,
      reason: 'shed',
      retryAfterMs: Infinity,
      limit: 0,
    });
    factor.set(1);
    // Growth creates no tokens, for keys without a bucket too: everyone refills from 0.
    expect(limiter.take('a')).toMatchObject({ allowed: false, reason: 'limited', retryAfterMs: 100 });
    clock.advance(100);
    expect(limiter.take('a').allowed).toBe(true);
    limiter.close();
    factor.set(0.5);
    expect(limiter.factor).toBe(1);
    expect(limiter.take('a').limit).toBe(10);
  });
});

describe('reasons', () => {
  it('limited when the key is over its quota even at factor 1; shed when the cut is the factor', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    factor.set(0.5);
    expect(limiter.take('a', { cost: 5 }).allowed).toBe(true);
    // 0 tokens: at factor 1 (fill level 0/5 → 0/10) it would be refused too
    expect(limiter.take('a').reason).toBe('limited');
    clock.advance(150); // 0.75 tokens: fill level 0.75/5 → 1.5 of 10 at factor 1, which pays 1
    const d = limiter.take('a');
    expect(d.reason).toBe('shed');
    expect(d.retryAfterMs).toBeCloseTo(50, 9);
    // a cost above the scaled capacity can never pass at this factor
    expect(limiter.take('b', { cost: 6 })).toMatchObject({ reason: 'shed', retryAfterMs: Infinity });
  });
});

describe('priorities', () => {
  it('charges cost·f/e: a class alone gets rate·e', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    factor.set(0.25); // capacity 2.5, rate 2.5/s; critical e = 0.5 pays 0.5, normal pays 1
    for (let i = 0; i < 5; i++) expect(limiter.take('c', { priority: 'critical' }).allowed).toBe(true);
    const d = limiter.take('c', { priority: 'critical' });
    expect(d.allowed).toBe(false);
    expect(d.retryAfterMs).toBeCloseTo(200, 9); // 5 requests per second = 10·0.5
    clock.advance(200);
    expect(limiter.take('c', { priority: 'critical' }).allowed).toBe(true);

    expect(limiter.take('n', { priority: 'normal' }).allowed).toBe(true);
    expect(limiter.take('n', { priority: 0.5, cost: 1.5 }).allowed).toBe(true);
    expect(limiter.take('n', { priority: 'normal' }).retryAfterMs).toBeCloseTo(400, 9);
  });

  it('sheds a priority whose scaled cost exceeds the scaled capacity, or whose factor is 0', () => {
    const { clock, factor, limiter } = setup({ ratePerSec: 10, burst: 10 });
    factor.set(0.25); // sheddable e = 0.0625 pays 4 per unit; capacity 2.5
    expect(limiter.take('s', { priority: 'sheddable' })).toMatchObject({
      allowed: false,
      reason: 'shed',
      retryAfterMs: Infinity,
    });
    expect(limiter.take('s', { priority: 'sheddable', cost: 0.5 }).allowed).toBe(true); // pays 2
    factor.set(1);
    clock.advance(1000);
    expect(limiter.take('t', { priority: 'sheddable', cost: 10 }).allowed).toBe(true);
  });
});

describe('acquire', () => {
  it('reserves in FIFO order, refuses a wait past maxWaitMs, refunds on abort', async () => {
    const { clock, limiter } = setup({ ratePerSec: 1, burst: 1 });
    expect(limiter.take('a').allowed).toBe(true);
    const first = limiter.acquire('a', { maxWaitMs: 2000 });
    const ctl = new AbortController();
    const second = limiter.acquire('a', { maxWaitMs: 2000, signal: ctl.signal });
    const third = await limiter.acquire('a', { maxWaitMs: 2000 });
    expect(third).toMatchObject({ allowed: false, reason: 'limited' });
    expect(third.retryAfterMs).toBeCloseTo(3000, 9);
    let firstDone = false;
    void first.then(() => {
      firstDone = true;
    });
    clock.advance(999);
    await Promise.resolve();
    expect(firstDone).toBe(false);
    clock.advance(1);
    expect(await first).toMatchObject({ allowed: true, reason: 'ok' });
    clock.advance(500);
    ctl.abort('gone');
    const err = await second.catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    expect((err as Error).cause).toBe('gone');
    expect(clock.pendingTimers).toBe(0);
    // at 1500 ms: -2 + 1.5 = -0.5, refund 1 → 0.5; at 2000 ms one token is there
    clock.advance(499);
    expect(limiter.take('a').allowed).toBe(false);
    clock.advance(1);
    expect(limiter.take('a').allowed).toBe(true);
  });

  it('admits at once when it can, rejects an already aborted signal, and close() cancels waits', async () => {
    const { clock, limiter } = setup({ ratePerSec: 1, burst: 1 });
    expect(await limiter.acquire('a')).toMatchObject({ allowed: true });
    const ctl = new AbortController();
    ctl.abort();
    expect(isAbortError(await limiter.acquire('a', { signal: ctl.signal }).catch((e: unknown) => e))).toBe(
      true,
    );
    const waiting = limiter.acquire('a');
    expect(clock.pendingTimers).toBe(1);
    limiter.close();
    expect(isAbortError(await waiting.catch((e: unknown) => e))).toBe(true);
    expect(clock.pendingTimers).toBe(0);
  });

  it('waits for the global bucket too, and reports the key bucket when it resolves', async () => {
    const { clock, limiter } = setup({ ratePerSec: 10, burst: 10, global: { ratePerSec: 1, burst: 1 } });
    limiter.take('a');
    const p = limiter.acquire('b', { maxWaitMs: 1000 });
    clock.advance(1000);
    const d = await p;
    expect(d).toMatchObject({ allowed: true, scope: 'key' });
    expect(d.remaining).toBeCloseTo(10, 9); // charged 1 at 0 ms, refilled since
    expect(limiter.take('c').allowed).toBe(false);
  });

  it('does not reserve for a blocked key, and a reservation ends a refusal streak', async () => {
    const { clock, limiter } = setup({
      ratePerSec: 1,
      burst: 1,
      block: { afterRefusals: 2, durationMs: 10_000 },
    });
    limiter.take('a');
    expect(limiter.take('a').reason).toBe('limited'); // streak 1
    const p = limiter.acquire('a', { maxWaitMs: 1000 }); // reserved: the streak ends
    expect(limiter.take('a').reason).toBe('limited'); // streak 1 again, not blocked
    expect(limiter.take('a').reason).toBe('blocked');
    expect(await limiter.acquire('a', { maxWaitMs: 60_000 })).toMatchObject({ reason: 'blocked' });
    clock.advance(1000);
    expect(await p).toMatchObject({ allowed: true });
  });

  it('never reserves a request that can never pass at this factor', async () => {
    const { factor, limiter } = setup();
    factor.set(0);
    expect(await limiter.acquire('a')).toMatchObject({ allowed: false, retryAfterMs: Infinity });
  });
});

describe('validation', () => {
  const clock = new ManualClock();
  const cases: Array<[Partial<KeyedLimiterOptions> & Record<string, unknown>, string]> = [
    [{ ratePerSec: -1 }, 'Expected `ratePerSec` to be a finite number > 0, got `-1` (number)'],
    [{ burst: Number.NaN }, 'Expected `burst` to be a finite number > 0, got `NaN` (number)'],
    [{ maxKeys: 0 }, 'Expected `maxKeys` to be an integer from 1 to 1073741824, got `0` (number)'],
    [{ maxKeys: 1.5 }, 'Expected `maxKeys` to be an integer from 1 to 1073741824, got `1.5` (number)'],
    [{ burts: 3 }, 'Expected `createLimiter.burts` to be one of the known options'],
    [{ tiers: 'gold' as never }, 'Expected `tiers` to be a function'],
    [
      { global: { ratePerSec: 1, burst: 0 } },
      'Expected `global.burst` to be a finite number > 0, got `0` (number)',
    ],
    [{ global: 5 as never }, 'Expected `global` to be an object'],
    [
      { block: { afterRefusals: 0, durationMs: 1 } },
      'Expected `block.afterRefusals` to be an integer from 1 to',
    ],
    [
      { block: { afterRefusals: 1, durationMs: -5 } },
      'Expected `block.durationMs` to be a finite number > 0',
    ],
    [{ factor: { factor: 2 } as never }, 'Expected `factor` to be a FactorSource'],
    [{ clock: {} as never }, 'Expected `clock` to be a Clock'],
  ];
  for (const [patch, message] of cases) {
    it(`rejects ${JSON.stringify(patch)}`, () => {
      let err: unknown;
      try {
        createLimiter({ ratePerSec: 1, burst: 1, clock, ...patch });
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message.startsWith(message)).toBe(true);
    });
  }

  it('checks cost and priority on every call', () => {
    const limiter = createLimiter({ ratePerSec: 1, burst: 5, clock, global: { ratePerSec: 1, burst: 3 } });
    for (const cost of [0, -1, Number.NaN, Infinity, 6, '1' as never]) {
      expect(() => limiter.take('a', { cost })).toThrow(/Expected `cost` to be a finite number > 0/);
    }
    expect(() => limiter.take('a', { cost: 4 })).toThrow(/global\.burst \(3\)/);
    expect(() => limiter.take('a', { priority: 'urgent' as never })).toThrow(/Expected `priority`/);
    expect(() => limiter.take('a', { priority: 1.5 })).toThrow(/Expected `priority`/);
    expect(() => limiter.take(5 as never)).toThrow(/Expected `key` to be a string/);
    expect(() => limiter.acquire('a', { maxWaitMs: -1 })).toThrow(/maxWaitMs/);
    expect(limiter.size).toBe(0);
  });
});

describe('KeyedLimiter policy', () => {
  it('exposes the default rate and burst, so RateLimit-Policy can advertise its window', () => {
    const limiter = createLimiter({ ratePerSec: 5, burst: 20, clock: new ManualClock() });
    expect(limiter.ratePerSec).toBe(5);
    expect(limiter.burst).toBe(20);
  });
});
