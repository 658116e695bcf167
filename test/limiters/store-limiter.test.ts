import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isAbortError, isConfigError } from '../../src/errors.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter, KeyedLimiter, StoreLimiter } from '../../src/limiters/keyed-limiter.js';
import { MemoryStore } from '../../src/stores/memory.js';
import type { Store, StoreDecision, StoreTakeRequest } from '../../src/stores/types.js';

const flush = () => new Promise<void>((r) => setImmediate(r));

/** A MemoryStore answering through promises, as a network store would. */
class AsyncStore implements Store {
  readonly inner: MemoryStore;
  readonly seen: StoreTakeRequest[] = [];
  constructor(clock: ManualClock) {
    this.inner = new MemoryStore({ clock });
  }
  async take(r: StoreTakeRequest): Promise<StoreDecision> {
    this.seen.push(r);
    return this.inner.take(r);
  }
  async peek(r: StoreTakeRequest): Promise<StoreDecision> {
    return this.inner.peek(r);
  }
  async refund(r: StoreTakeRequest): Promise<void> {
    this.inner.refund(r);
  }
  async reset(key: string): Promise<void> {
    this.inner.reset(key);
  }
  async close(): Promise<void> {}
}

function setup(extra: Record<string, unknown> = {}) {
  const clock = new ManualClock();
  const factor = new ManualFactor(1);
  const store = new AsyncStore(clock);
  const limiter = createLimiter({ store, ratePerSec: 10, burst: 5, clock, factor, ...extra });
  return { clock, factor, store, limiter };
}

describe('createLimiter({ store })', () => {
  it('returns a StoreLimiter whose decisions are promises; without store a KeyedLimiter', () => {
    const { limiter } = setup();
    expect(limiter).toBeInstanceOf(StoreLimiter);
    expect(createLimiter({ ratePerSec: 1, burst: 1 })).toBeInstanceOf(KeyedLimiter);
  });

  it('admits the burst, then refuses as limited with the store’s exact wait', async () => {
    const { clock, limiter } = setup();
    for (let i = 0; i < 5; i++) expect((await limiter.take('k')).allowed).toBe(true);
    const d = await limiter.take('k');
    expect(d).toMatchObject({ allowed: false, reason: 'limited', scope: 'key', retryAfterMs: 100 });
    clock.advance(100);
    expect((await limiter.take('k')).allowed).toBe(true);
  });

  it('asks the store at each request’s effective factor (priority), with its tier’s limits', async () => {
    const { factor, store, limiter } = setup({
      tiers: (key: string) => (key.startsWith('vip') ? { ratePerSec: 100, burst: 50 } : undefined),
    });
    factor.set(0.25);
    await limiter.take('a', { priority: 'critical' });
    await limiter.take('vip1', { priority: 'sheddable' });
    expect(store.seen[0]).toMatchObject({ key: 'a', factor: 0.5, limits: { ratePerSec: 10, burst: 5 } });
    expect(store.seen[1]).toMatchObject({
      key: 'vip1',
      factor: 0.0625,
      limits: { ratePerSec: 100, burst: 50 },
    });
    // At 0.25 a normal key holds 1.25 tokens: the second take is shed, not limited.
    const n = [await limiter.take('b'), await limiter.take('b')];
    expect(n.map((d) => d.allowed)).toEqual([true, false]);
    expect(n[1]!.reason).toBe('shed');
  });

  it('the global bucket refuses with scope global and gives the key its tokens back', async () => {
    const { store, limiter } = setup({ global: { ratePerSec: 1, burst: 2 } });
    expect((await limiter.take('a')).allowed).toBe(true);
    expect((await limiter.take('b')).allowed).toBe(true);
    const d = await limiter.take('c');
    expect(d).toMatchObject({ allowed: false, scope: 'global' });
    expect(d.retryAfterMs).toBeCloseTo(1000, 6);
    expect(
      store.inner.peek({ key: 'c', cost: 5, limits: { ratePerSec: 10, burst: 5 }, factor: 1 }).allowed,
    ).toBe(true);
  });

  it('hashes keys longer than 256 bytes before they reach the store', async () => {
    const { store, limiter } = setup();
    await limiter.take('x'.repeat(10_000));
    expect(store.seen[0]!.key.length).toBeLessThan(60);
  });

  it('acquire waits for the store’s retryAfterMs, wakes on a factor change, and aborts', async () => {
    const { clock, factor, limiter } = setup();
    for (let i = 0; i < 5; i++) await limiter.take('k');
    factor.set(0);
    let got: unknown;
    limiter.acquire('k').then((d) => {
      got = d;
    });
    await flush();
    clock.advance(10_000);
    await flush();
    expect(got).toBeUndefined(); // factor 0: nothing refills
    factor.set(1);
    await flush();
    clock.advance(100);
    await flush();
    await flush();
    expect(got).toMatchObject({ allowed: true });
    const ac = new AbortController();
    const p = limiter.acquire('k', { signal: ac.signal });
    await flush();
    ac.abort();
    await expect(p).rejects.toSatisfy(isAbortError);
    const late = await limiter.acquire('k', { maxWaitMs: 10 });
    expect(late.allowed).toBe(false);
  });

  it('refuses bad options and arguments with ConfigErrors', async () => {
    const clock = new ManualClock();
    for (const bad of [{ store: {} }, { store: new MemoryStore(), ratePerSec: 0, burst: 1 }]) {
      expect(() => createLimiter({ ratePerSec: 1, burst: 1, ...bad } as never)).toThrow(/store|ratePerSec/);
    }
    const l = createLimiter({
      store: new MemoryStore({ clock }),
      ratePerSec: 1,
      burst: 1,
      clock,
      factor: 0.5,
    });
    expect(l.factor).toBe(0.5);
    await expect(l.take('k', null as never)).rejects.toSatisfy(isConfigError);
    await expect(l.take('k', { cost: 2 })).rejects.toSatisfy(isConfigError);
  });
});
