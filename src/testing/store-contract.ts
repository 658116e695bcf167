/**
 * The contract every `Store` must keep, as checks any test runner can register: pass your runner's
 * `describe` and `it`, a factory for the store, and a way to let time pass (advance a ManualClock,
 * or wait for real when the store keeps time itself, as Redis does). Assertions use node:assert, so
 * a failure fails the test in vitest, jest, mocha or node:test alike.
 *
 * Every check uses keys of its own, so stores may share a backend between checks. Limits are
 * chosen so that the time a real backend spends between calls (well under a second) cannot change
 * an exact count: the exactness checks refill at 0.01 token per second.
 *
 * ```ts
 * import { describe, it } from 'vitest';
 * import { storeContract } from 'spillway/testing';
 * storeContract({ name: 'my store', describe, it, createStore: () => new MyStore(), advance: (ms) => clock.advance(ms) });
 * ```
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Store, StoreDecision, StoreLimits, StoreTakeRequest } from '../stores/types.js';

export interface StoreContractOptions {
  /** Names the suite. */
  readonly name: string;
  /** Your runner's `describe` (groups checks). */
  readonly describe: (name: string, fn: () => void) => void;
  /** Your runner's `it` (one check; the function returns a promise). */
  readonly it: (name: string, fn: () => Promise<void>) => void;
  /** Makes the store one check uses. */
  readonly createStore: () => Store | Promise<Store>;
  /** Lets `ms` milliseconds pass for the store. */
  readonly advance: (ms: number) => void | Promise<void>;
  /** Called after each check with its store (close connections here). Default: `store.close()`. */
  readonly destroy?: (store: Store) => void | Promise<void>;
  /** Whether the backend still holds state for `key`; enables the expiry check when given. */
  readonly holdsKey?: (store: Store, key: string) => boolean | Promise<boolean>;
  /**
   * How long after its bucket is full again the backend may still hold a key, in ms (the expiry
   * check waits this much longer before it asks `holdsKey`). @default 0
   */
  readonly expirySlackMs?: number;
  /**
   * Time the backend may let pass on its own between two calls, in ms (0 for a ManualClock).
   * Bounds the slack in timing checks. @default 0
   */
  readonly realTimeSlackMs?: number;
}

const SLOW: StoreLimits = { ratePerSec: 0.01, burst: 5 };

function request(key: string, limits: StoreLimits, cost = 1, factor = 1): StoreTakeRequest {
  return { key, cost, limits, factor };
}

function near(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= tolerance + 1e-9,
    `${what}: expected ${expected} ± ${tolerance}, got ${actual}`,
  );
}

/** Registers the contract checks with the caller's runner. */
export function storeContract(options: StoreContractOptions): void {
  const { describe, it, advance } = options;
  const slack = options.realTimeSlackMs ?? 0;
  const expirySlack = options.expirySlackMs ?? 0;
  const destroy = options.destroy ?? ((s: Store) => s.close());

  const check = (name: string, body: (store: Store, key: (n?: string) => string) => Promise<void>) => {
    it(name, async () => {
      const store = await options.createStore();
      const id = randomUUID();
      try {
        await body(store, (n = 'k') => `contract:${id}:${n}`);
      } finally {
        await destroy(store);
      }
    });
  };
  const takeN = async (store: Store, req: StoreTakeRequest, n: number): Promise<StoreDecision[]> => {
    const out: StoreDecision[] = [];
    for (let i = 0; i < n; i++) out.push(await store.take(req));
    return out;
  };

  describe(`Store contract: ${options.name}`, () => {
    check('a new key starts with a full bucket', async (store, key) => {
      const d = await store.take(request(key(), SLOW));
      assert.equal(d.allowed, true);
      assert.equal(d.retryAfterMs, 0);
      near(d.remaining, 4, 0.01, 'remaining');
      near(d.resetMs, 100_000, 0.01 + slack, 'resetMs (1 token at 0.01/s)');
    });

    check('admits exactly the burst, then refuses with the exact wait', async (store, key) => {
      const r = request(key(), SLOW);
      const ds = await takeN(store, r, 7);
      assert.deepEqual(
        ds.map((d) => d.allowed),
        [true, true, true, true, true, false, false],
      );
      const refused = ds[6]!;
      assert.ok(refused.remaining < 1, `remaining ${refused.remaining}`);
      // 1 token at 0.01/s is 100 s; a little less if real time passed since the bucket emptied.
      assert.ok(refused.retryAfterMs <= 100_000 && refused.retryAfterMs > 100_000 - 2 * slack - 1);
      assert.ok(refused.resetMs >= refused.retryAfterMs);
    });

    check('a cost above the burst (at this factor) is never admitted', async (store, key) => {
      const d = await store.take(request(key(), SLOW, 6));
      assert.equal(d.allowed, false);
      assert.equal(d.retryAfterMs, Infinity);
      const half = await store.take(request(key('b'), SLOW, 3, 0.5));
      assert.equal(half.allowed, false);
      assert.equal(half.retryAfterMs, Infinity);
      const ok = await store.take(request(key('c'), SLOW, 5));
      assert.equal(ok.allowed, true);
    });

    check('costs are charged in full', async (store, key) => {
      const r = request(key(), SLOW, 2);
      const ds = await takeN(store, r, 3);
      assert.deepEqual(
        ds.map((d) => d.allowed),
        [true, true, false],
      );
      near(ds[2]!.remaining, 1, 0.01, 'remaining');
      assert.equal((await store.take(request(key(), SLOW, 1))).allowed, true);
    });

    check('peek answers like take without charging', async (store, key) => {
      const r = request(key(), SLOW, 2);
      const p1 = await store.peek(r);
      const p2 = await store.peek(r);
      assert.equal(p1.allowed, true);
      near(p1.remaining, 5, 0.01, 'peek on a new key');
      near(p2.remaining, 5, 0.01, 'second peek');
      await takeN(store, r, 2);
      const p3 = await store.peek(r);
      assert.equal(p3.allowed, false);
      assert.ok(p3.retryAfterMs > 0);
      near(p3.remaining, 1, 0.01, 'peek after two takes');
      const t = await store.take(request(key(), SLOW, 1));
      assert.equal(t.allowed, true, 'the refused peek charged nothing');
    });

    check('refund gives tokens back, never above the burst', async (store, key) => {
      const r = request(key(), SLOW);
      await takeN(store, r, 5);
      assert.equal((await store.take(r)).allowed, false);
      await store.refund(request(key(), SLOW, 2));
      const ds = await takeN(store, r, 3);
      assert.deepEqual(
        ds.map((d) => d.allowed),
        [true, true, false],
      );
      await store.refund(request(key('fresh'), SLOW, 10));
      near((await store.take(request(key('fresh'), SLOW))).remaining, 4, 0.01, 'refund on a full bucket');
      await store.refund(request(key('fresh'), SLOW, 10));
      near((await store.peek(request(key('fresh'), SLOW))).remaining, 5, 0.01, 'refund capped at burst');
    });

    check('reset forgets a key; other keys keep their state', async (store, key) => {
      const a = request(key('a'), SLOW);
      const b = request(key('b'), SLOW);
      await takeN(store, a, 5);
      await takeN(store, b, 5);
      assert.equal((await store.take(a)).allowed, false);
      await store.reset(key('a'));
      const d = await store.take(a);
      assert.equal(d.allowed, true);
      near(d.remaining, 4, 0.01, 'after reset');
      assert.equal((await store.take(b)).allowed, false);
    });

    check('an empty bucket refills at the rate, up to the burst', async (store, key) => {
      const fast: StoreLimits = { ratePerSec: 100, burst: 3 }; // a token per 10 ms
      const r = request(key(), fast);
      await takeN(store, r, 3);
      await advance(25);
      const p = await store.peek(r);
      assert.ok(p.remaining >= 2.5 - 0.01 && p.remaining <= 3, `remaining after 25 ms: ${p.remaining}`);
      await advance(100);
      const ds = await takeN(store, r, 3);
      assert.ok(
        ds.every((d) => d.allowed),
        'full again',
      );
      near(ds[0]!.remaining, 2, 0.1 + slack / 10, 'refill stops at the burst');
    });

    check('the factor scales capacity and rate', async (store, key) => {
      const limits: StoreLimits = { ratePerSec: 0.01, burst: 10 };
      const half = await takeN(store, request(key(), limits, 1, 0.5), 6);
      assert.deepEqual(
        half.map((d) => d.allowed),
        [true, true, true, true, true, false],
      );
      const fastHalf = request(key('rate'), { ratePerSec: 1, burst: 2 }, 1, 0.5);
      await takeN(store, fastHalf, 2);
      const refused = await store.take(fastHalf);
      assert.equal(refused.allowed, false);
      // 1 token at 1/s · 0.5 is 2 s away.
      assert.ok(refused.retryAfterMs <= 2000 && refused.retryAfterMs > 2000 - 2 * slack - 1);
      const zero = await store.take(request(key('zero'), limits, 1, 0));
      assert.equal(zero.allowed, false);
      assert.equal(zero.retryAfterMs, Infinity);
    });

    check('a lower factor shrinks the capacity at once', async (store, key) => {
      const limits: StoreLimits = { ratePerSec: 0.01, burst: 10 };
      near((await store.take(request(key(), limits, 1, 1))).remaining, 9, 0.01, 'at factor 1');
      const d = await store.take(request(key(), limits, 1, 0.2));
      assert.equal(d.allowed, true);
      near(d.remaining, 1, 0.01, 'capacity 2 at factor 0.2, one taken');
      assert.equal((await store.take(request(key(), limits, 1, 0.2))).allowed, true);
      assert.equal((await store.take(request(key(), limits, 1, 0.2))).allowed, false);
    });

    check('a key whose bucket is full again reads as new (and may be dropped)', async (store, key) => {
      const fast: StoreLimits = { ratePerSec: 200, burst: 2 }; // full again 10 ms after emptying
      const r = request(key(), fast);
      const ds = await takeN(store, r, 2);
      assert.ok(ds[1]!.resetMs <= 10 + 1e-6, `resetMs ${ds[1]!.resetMs}`);
      await advance(40);
      near((await store.peek(r)).remaining, 2, 0.01, 'full again, whether or not the key is held');
      if (options.holdsKey !== undefined) {
        await advance(expirySlack);
        assert.equal(
          await options.holdsKey(store, key()),
          false,
          `the store still holds a key ${expirySlack} ms after its bucket was full`,
        );
      }
      near((await store.take(r)).remaining, 1, 0.01, 'full again');
    });

    check('concurrent takes on one key admit exactly the burst', async (store, key) => {
      const limits: StoreLimits = { ratePerSec: 0.001, burst: 50 };
      const ds = await Promise.all(Array.from({ length: 300 }, () => store.take(request(key(), limits))));
      assert.equal(ds.filter((d) => d.allowed).length, 50);
      assert.ok(ds.filter((d) => !d.allowed).every((d) => d.retryAfterMs > 0));
    });

    check('close can be called twice', async (store) => {
      await store.close();
      await store.close();
    });
  });
}
