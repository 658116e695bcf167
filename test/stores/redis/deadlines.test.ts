/**
 * The Redis store's call deadlines on one timer (ManualClock), and the store's timeout behaviour
 * with a client whose answers the test controls: each call waits exactly `timeoutMs`, no longer,
 * a late answer changes nothing, and one timer serves every call in flight.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { Deadlines } from '../../../src/stores/redis/deadlines.js';
import { createRedisStore } from '../../../src/stores/redis/index.js';
import type { StoreDecision } from '../../../src/stores/types.js';

describe('Deadlines', () => {
  it('times a call out when its deadline comes, not before', () => {
    const clock = new ManualClock();
    const d = new Deadlines(clock, 100);
    const fired: string[] = [];
    d.watch(() => fired.push('a'));
    clock.advance(99);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual(['a']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('gives each call its own deadline, on one timer', () => {
    const clock = new ManualClock();
    const d = new Deadlines(clock, 100);
    const fired: string[] = [];
    d.watch(() => fired.push('a'));
    clock.advance(30);
    d.watch(() => fired.push('b'));
    clock.advance(30);
    d.watch(() => fired.push('c'));
    expect(clock.pendingTimers).toBe(1);
    clock.advance(40); // t = 100
    expect(fired).toEqual(['a']);
    clock.advance(30); // t = 130
    expect(fired).toEqual(['a', 'b']);
    clock.advance(29); // t = 159
    expect(fired).toEqual(['a', 'b']);
    clock.advance(1); // t = 160
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(clock.pendingTimers).toBe(0);
    expect(d.size).toBe(0);
  });

  it('never times out a settled call, and a call that timed out cannot settle', () => {
    const clock = new ManualClock();
    const d = new Deadlines(clock, 100);
    const fired: string[] = [];
    const a = d.watch(() => fired.push('a'));
    clock.advance(10);
    const b = d.watch(() => fired.push('b'));
    expect(a.settle()).toBe(true);
    expect(a.settle()).toBe(false);
    clock.advance(200);
    expect(fired).toEqual(['b']);
    expect(b.settle()).toBe(false);
  });

  it('stops its timer when every call has settled', () => {
    const clock = new ManualClock();
    const d = new Deadlines(clock, 100);
    for (let i = 0; i < 5000; i++) {
      d.watch(() => {
        throw new Error('should not time out');
      }).settle();
      clock.advance(0.05);
    }
    clock.advance(100);
    expect(clock.pendingTimers).toBe(0);
    expect(d.size).toBe(0);
    d.watch(() => {});
    expect(clock.pendingTimers).toBe(1);
  });

  it('drops answered calls at once when the oldest is answered', () => {
    const clock = new ManualClock();
    const d = new Deadlines(clock, 100);
    const fired: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((name) => d.watch(() => fired.push(name)));
    expect(b!.settle()).toBe(true);
    expect(d.size).toBe(3); // b waits behind a, still in flight
    expect(a!.settle()).toBe(true);
    expect(d.size).toBe(1); // a and b leave; c is in flight
    expect(c!.settle()).toBe(true);
    expect(d.size).toBe(0);
    clock.advance(100); // the timer finds nothing to time out and is not armed again
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
    d.watch(() => fired.push('d'));
    clock.advance(100);
    expect(fired).toEqual(['d']);
  });

  it('keeps its FIFO bounded under steady traffic', () => {
    const clock = new ManualClock();
    const d = new Deadlines(clock, 100);
    let open = [] as { settle(): boolean }[];
    for (let i = 0; i < 20_000; i++) {
      open.push(d.watch(() => {}));
      if (open.length > 3) open.shift()!.settle();
      clock.advance(0.1);
    }
    // Answered in order: only the calls in flight.
    expect(d.size).toBeLessThanOrEqual(4);
    open = [];
  });
});

/** An ioredis-shaped client whose every EVALSHA waits until the test answers it. */
function heldClient() {
  const calls: { resolve: (v: unknown) => void; keys: number }[] = [];
  const client = {
    status: 'ready',
    evalsha: (_sha: string, numKeys: number) =>
      new Promise((resolve) => {
        calls.push({ resolve, keys: numKeys });
      }),
    eval: () => Promise.reject(new Error('not used')),
    del: () => Promise.resolve(1),
  };
  return { client, calls };
}

const request = { key: 'k', cost: 1, limits: { ratePerSec: 10, burst: 10 }, factor: 1 };

describe('RedisStore timeouts (ManualClock)', () => {
  it('answers a call whose client throws at once by the policy, and no deadline fires later', async () => {
    const clock = new ManualClock();
    const client = {
      status: 'ready',
      evalsha: () => {
        throw new Error('socket gone');
      },
      eval: () => Promise.reject(new Error('not used')),
      del: () => Promise.resolve(1),
    };
    const store = createRedisStore({ client: client as never, clock, timeoutMs: 50, onError: 'closed' });
    const errors: string[] = [];
    store.on('error', (e) => errors.push(e.error.kind));
    const decision = await store.take(request);
    expect(decision).toMatchObject({ allowed: false, unavailable: true });
    expect(errors).toEqual(['unavailable']);
    clock.advance(100);
    await Promise.resolve();
    expect(errors).toEqual(['unavailable']);
    expect(store.stats()).toMatchObject({ errors: 1, timeouts: 0, fallbackDecisions: 1 });
  });

  it('answers with the failure policy exactly timeoutMs after the call, and ignores a late reply', async () => {
    const clock = new ManualClock();
    const { client, calls } = heldClient();
    const store = createRedisStore({ client: client as never, clock, timeoutMs: 50, onError: 'closed' });
    const errors: string[] = [];
    store.on('error', (e) => errors.push(e.error.kind));
    let answer: StoreDecision | undefined;
    void store.take(request).then((d) => {
      answer = d;
    });
    clock.advance(49);
    await Promise.resolve();
    expect(answer).toBeUndefined();
    clock.advance(1);
    await Promise.resolve();
    expect(answer).toMatchObject({ allowed: false, unavailable: true });
    expect(errors).toEqual(['timeout']);
    calls[0]!.resolve(9 * 2 + 1); // admitted, 9 tokens (a whole count: tokens · 2 + allowed)
    await new Promise((r) => setImmediate(r));
    expect(store.stats()).toMatchObject({ redisDecisions: 0, timeouts: 1, fallbackDecisions: 1 });
  });

  it('times out each call in flight at its own deadline and answers the ones Redis answers', async () => {
    const clock = new ManualClock();
    const { client, calls } = heldClient();
    const store = createRedisStore({ client: client as never, clock, timeoutMs: 50, batch: false });
    const answers: (StoreDecision | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      void store.take({ ...request, key: `k${i}` }).then((d) => {
        answers[i] = d;
      });
      clock.advance(20);
    }
    // t = 60: the first call timed out at 50 (open policy: admitted without Redis).
    await Promise.resolve();
    expect(answers[0]).toMatchObject({ allowed: true });
    expect(store.stats().timeouts).toBe(1);
    calls[1]!.resolve(`${0.5 * 2 ** 53} 0`); // refused, 0.5 token = 0.5 · 2^0 (exponent · 2 + allowed)
    await new Promise((r) => setImmediate(r));
    expect(answers[1]).toEqual({ allowed: false, remaining: 0.5, retryAfterMs: 50, resetMs: 950 });
    clock.advance(40); // t = 100: the third, sent at 40, timed out at 90
    await Promise.resolve();
    expect(answers[2]).toMatchObject({ allowed: true });
    expect(store.stats()).toMatchObject({ redisDecisions: 1, timeouts: 2 });
    expect(clock.pendingTimers).toBe(0);
  });
});
