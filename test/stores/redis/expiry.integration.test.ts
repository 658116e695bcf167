// A key's expiry against the time its bucket would be full again (F): every write leaves the key
// expiring no earlier than F and at most EXPIRY_SLACK_MS (+ 2 ms of rounding) after it. Writes that
// keep F within that window keep the expiry (no PX), the others set it again; both scripts (one
// decision a call, and a batch) and state written by older versions (32 bytes, no deadline).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore, EXPIRY_SLACK_MS, type RedisStore } from '../../../src/stores/redis/index.js';
import { redisMissing } from './services.js';

const missing = await redisMissing();
const run = missing === undefined ? describe : describe.skip;
const prefix = `spillway-test:expiry:${process.pid}:`;

interface Stored {
  /** The time the bucket would be full again, server ms. */
  readonly fullMs: number;
  /** The deadline stored with the state, server ms. */
  readonly deadlineMs: number;
  /** The refill rate per ms and the capacity stored with the state (the last caller's factor). */
  readonly ratePerMs: number;
  readonly capacity: number;
}

run('Redis store: key expiry with a bounded slack', () => {
  let client: Redis;
  let admin: Redis;
  let store: RedisStore;
  beforeAll(() => {
    client = new Redis({ host: '127.0.0.1', port: 6379 });
    admin = new Redis({ host: '127.0.0.1', port: 6379 });
    store = createRedisStore({ client, prefix, timeoutMs: 2000 });
  });
  afterAll(async () => {
    store.close();
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    client.disconnect();
    admin.disconnect();
  });

  /** Reads the key's state and checks its expiry against F: F <= expiry <= F + slack + 2 ms. */
  async function expiry(key: string): Promise<Stored> {
    const redisKey = store.redisKey(key);
    const raw = (await admin.getBuffer(redisKey))!;
    const pttl = await admin.pttl(redisKey);
    const [s, us] = await admin.time();
    const serverNow = Number(s) * 1000 + Number(us) / 1000;
    expect(raw.length).toBe(40);
    const [tokens, lastMs, ratePerMs, capacity, deadlineMs] = [0, 8, 16, 24, 32].map((o) =>
      raw.readDoubleLE(o),
    );
    const fullMs = lastMs! + (capacity! - tokens!) / ratePerMs!;
    expect(deadlineMs).toBeGreaterThanOrEqual(fullMs - 1e-6);
    expect(deadlineMs).toBeLessThanOrEqual(fullMs + EXPIRY_SLACK_MS + 1e-6);
    // The key expires no earlier than F (PTTL was read before serverNow) and no later than 2 ms
    // after the stored deadline (whole milliseconds), counted from the write.
    expect(pttl).toBeGreaterThanOrEqual(Math.floor(fullMs - serverNow));
    expect(pttl).toBeLessThanOrEqual(deadlineMs! - lastMs! + 3);
    return { fullMs, deadlineMs: deadlineMs!, ratePerMs: ratePerMs!, capacity: capacity! };
  }

  it('a first write expires the slack after F; writes that keep F within it keep the expiry', async () => {
    const limits = { ratePerSec: 10, burst: 100 };
    const take = (cost: number) => store.take({ key: 'grow', cost, limits, factor: 1 });
    expect((await take(5)).allowed).toBe(true);
    const first = await expiry('grow');
    expect(first.deadlineMs - first.fullMs).toBeGreaterThanOrEqual(EXPIRY_SLACK_MS - 1);
    // 4 more tokens move F 400 ms later: still before the deadline, so the expiry stays.
    expect((await take(4)).allowed).toBe(true);
    const kept = await expiry('grow');
    expect(kept.deadlineMs).toBe(first.deadlineMs);
    expect(kept.fullMs).toBeGreaterThan(first.fullMs + 399);
    // 7 more move F past the deadline: the expiry is set again, the slack after the new F.
    expect((await take(7)).allowed).toBe(true);
    const moved = await expiry('grow');
    expect(moved.fullMs).toBeGreaterThan(first.deadlineMs);
    expect(moved.deadlineMs - moved.fullMs).toBeGreaterThanOrEqual(EXPIRY_SLACK_MS - 1);
  });

  it('a write in place under a changed factor stores the new rate and capacity', async () => {
    const limits = { ratePerSec: 10, burst: 100 };
    expect((await store.take({ key: 'factor', cost: 50, limits, factor: 1 })).allowed).toBe(true);
    const first = await expiry('factor');
    expect([first.ratePerMs, first.capacity]).toEqual([0.01, 100]);
    // Capacity 99 at 0.0099/ms: F moves ~50 ms later, within the slack, so the expiry stays.
    expect((await store.take({ key: 'factor', cost: 1, limits, factor: 0.99 })).allowed).toBe(true);
    const changed = await expiry('factor');
    expect(changed.deadlineMs).toBe(first.deadlineMs);
    expect([changed.ratePerMs, changed.capacity]).toEqual([(10 / 1000) * 0.99, 100 * 0.99]);
    // The same factor again: only the tokens and the time are rewritten; the rest stays.
    expect((await store.take({ key: 'factor', cost: 1, limits, factor: 0.99 })).allowed).toBe(true);
    const same = await expiry('factor');
    expect(same).toMatchObject({ deadlineMs: first.deadlineMs, ratePerMs: changed.ratePerMs, capacity: 99 });
  });

  it('a refund that brings F more than the slack earlier sets the expiry again', async () => {
    const limits = { ratePerSec: 10, burst: 100 };
    const r = { key: 'refund', cost: 50, limits, factor: 1 };
    expect((await store.take(r)).allowed).toBe(true);
    const taken = await expiry('refund');
    await store.refund({ ...r, cost: 20 });
    const refunded = await expiry('refund');
    expect(refunded.fullMs).toBeLessThan(taken.fullMs - 1999);
    expect(refunded.deadlineMs - refunded.fullMs).toBeGreaterThanOrEqual(EXPIRY_SLACK_MS - 1);
    // A lower factor (capacity halved at once) moves F too, and is bounded the same way.
    expect((await store.take({ ...r, cost: 1, factor: 0.5 })).allowed).toBe(true);
    await expiry('refund');
  });

  it('decisions batched into one call keep the same bounds', async () => {
    const limits = { ratePerSec: 10, burst: 100 };
    const keys = ['b1', 'b2', 'b3', 'b4'];
    // The first goes at once; the other three wait for it and go together (the batch script).
    const ds = await Promise.all(keys.map((key) => store.take({ key, cost: 30, limits, factor: 1 })));
    expect(ds.every((d) => d.allowed)).toBe(true);
    for (const key of keys) await expiry(key);
    const again = await Promise.all(keys.map((key) => store.take({ key, cost: 1, limits, factor: 1 })));
    expect(again.every((d) => d.allowed)).toBe(true);
    for (const key of keys) await expiry(key);
  });

  it('state written by an older version (32 bytes, no deadline) gets a deadline and an expiry', async () => {
    const [s, us] = await admin.time();
    const old = Buffer.alloc(32);
    old.writeDoubleLE(40, 0); // 40 of 100 tokens
    old.writeDoubleLE(Number(s) * 1000 + Number(us) / 1000, 8);
    old.writeDoubleLE(0.01, 16);
    old.writeDoubleLE(100, 24);
    await admin.set(store.redisKey('old'), old);
    const d = await store.take({ key: 'old', cost: 1, limits: { ratePerSec: 10, burst: 100 }, factor: 1 });
    expect(d.allowed).toBe(true);
    expect(d.remaining).toBeGreaterThan(38.9);
    expect(d.remaining).toBeLessThan(40);
    await expiry('old');
  });
});
