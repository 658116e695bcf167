import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { MemoryStore } from '../../src/stores/memory.js';
import type { StoreLimits } from '../../src/stores/types.js';

const LIMITS: StoreLimits = { ratePerSec: 10, burst: 5 };
const req = (key: string, cost = 1, factor = 1, limits = LIMITS) => ({ key, cost, limits, factor });

describe('MemoryStore', () => {
  it('answers synchronously, with exact waits', () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    for (let i = 0; i < 5; i++) expect(store.take(req('k')).allowed).toBe(true);
    const d = store.take(req('k'));
    expect(d).toMatchObject({ allowed: false, retryAfterMs: 100 });
    clock.advance(100);
    expect(store.take(req('k')).allowed).toBe(true);
  });

  it('refills the elapsed time at the factor in force then, and clamps at once to a lower one', () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    store.take(req('k', 1, 0.5)); // capacity 2.5 at 0.5: 1.5 left
    store.take(req('k', 1, 0.5)); // 0.5 left
    clock.advance(200); // at 0.5 it refills 5 per second: 0.5 + 1
    expect(store.peek(req('k', 1, 0.5)).remaining).toBeCloseTo(1.5, 12);
    expect(store.peek(req('k', 1, 0.2)).remaining).toBeCloseTo(1, 12); // capacity 1 at 0.2: clamped
    store.take(req('k', 0.5, 0.2)); // 0.5 left, now at 0.2 (2 per second)
    clock.advance(100);
    expect(store.peek(req('k', 1, 0.2)).remaining).toBeCloseTo(0.7, 12);
  });

  it('stays within maxKeys, dropping full buckets and unused keys first (CLOCK)', () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock, maxKeys: 100 });
    store.take(req('hot', 5));
    for (let i = 0; i < 1000; i++) {
      store.take(req(`k${i}`));
      store.take(req('hot', 1e-9)); // the hot key is used all along
      expect(store.size).toBeLessThanOrEqual(100);
    }
    expect(store.has('hot')).toBe(true);
    expect(store.take(req('hot')).allowed).toBe(false); // its empty bucket was kept
  });

  it('reset and close forget keys; peek and refunds to missing keys create none', () => {
    const store = new MemoryStore({ clock: new ManualClock() });
    store.peek(req('a'));
    store.refund(req('a', 3));
    expect(store.size).toBe(0);
    store.take(req('a'));
    expect(store.size).toBe(1);
    store.reset('a');
    expect(store.size).toBe(0);
    store.take(req('b'));
    store.close();
    expect(store.size).toBe(0);
  });

  it('refuses bad options with ConfigErrors naming them', () => {
    for (const bad of [{ maxKeys: 0 }, { maxKeys: 1.5 }, { clock: 5 }, { other: 1 }]) {
      let err: unknown;
      try {
        new MemoryStore(bad as never);
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
    }
  });
});
