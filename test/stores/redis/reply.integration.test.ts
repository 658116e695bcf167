// The token-bucket script replies with the tokens left as two integers (math.frexp's mantissa
// · 2^53 and its exponent): the store must read back the very double the script computed, on every
// client, including ioredis with `stringNumbers` (integers as strings). A bucket whose stored time
// is in the future refills nothing (time never moves backwards), so a peek reads the stored tokens.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisStore,
  EXPIRY_SLACK_MS,
  TOKEN_BUCKET_PEEK_SCRIPT,
  TOKEN_BUCKET_REFUND_SCRIPT,
  TOKEN_BUCKET_TAKE_SCRIPT,
} from '../../../src/stores/redis/index.js';
import { type ClientKind, standalone, type TestClient } from './clients.js';
import { redisMissing } from './services.js';

const missing = await redisMissing();
const run = missing === undefined ? describe : describe.skip;
const prefix = `spillway-test:reply:${process.pid}:`;

/** The script's state: tokens, last write (server ms), rate per ms, capacity; '<dddd'. */
function state(tokens: number, lastMs: number, ratePerMs: number, capacity: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeDoubleLE(tokens, 0);
  b.writeDoubleLE(lastMs, 8);
  b.writeDoubleLE(ratePerMs, 16);
  b.writeDoubleLE(capacity, 24);
  return b;
}

const FUTURE_MS = 4e12; // year 2096: the bucket refills nothing until then
// Whole counts under 2^51 come back as one integer, the others as a string: both ways here.
const TOKENS = [
  0,
  7,
  2 ** 51 - 1,
  2 ** 51,
  2 ** 60,
  0.1 + 0.2,
  1 / 3,
  2.5e-7,
  123_456_789.123_456_78,
  1e-300,
  3e300,
  2 ** -1022,
];

const kinds: (ClientKind | 'ioredis stringNumbers')[] = [
  'ioredis',
  'iovalkey',
  'node-redis',
  'ioredis stringNumbers',
];
for (const kind of kinds) {
  run(`the script's reply on ${kind}`, () => {
    let client: TestClient;
    let admin: Redis;
    beforeAll(async () => {
      if (kind === 'ioredis stringNumbers') {
        const c = new Redis({ host: '127.0.0.1', port: 6379, stringNumbers: true });
        client = { client: c as never, close: async () => c.disconnect() };
      } else {
        client = await standalone(kind);
      }
      admin = new Redis({ host: '127.0.0.1', port: 6379 });
    });
    afterAll(async () => {
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await client.close();
      admin.disconnect();
    });

    it('carries the tokens bit-exact, and the waits derive from them', async () => {
      const store = createRedisStore({ client: client.client, prefix: `${prefix}${kind}:`, timeoutMs: 2000 });
      const limits = { ratePerSec: 3, burst: 1e301 };
      for (const [i, tokens] of TOKENS.entries()) {
        const key = `k${i}`;
        await admin.set(store.redisKey(key), state(tokens, FUTURE_MS, 0.003, 1e301));
        const d = await store.peek({ key, cost: 1, limits, factor: 1 });
        expect(Object.is(d.remaining, tokens), `${tokens} read back as ${d.remaining}`).toBe(true);
        expect(d.allowed).toBe(tokens + 1e-9 >= 1);
        expect(d.retryAfterMs).toBe(d.allowed ? 0 : (1 - tokens) / (3 / 1000));
        expect(d.resetMs).toBe((1e301 - tokens) / (3 / 1000));
      }
      expect(store.stats()).toMatchObject({ redisDecisions: TOKENS.length, errors: 0 });
      store.close();
    });

    it('a refused take writes nothing, unless it brings a new factor', async () => {
      const store = createRedisStore({ client: client.client, prefix: `${prefix}${kind}:`, timeoutMs: 2000 });
      const limits = { ratePerSec: 1, burst: 2 };
      const key = 'refused';
      const redisKey = store.redisKey(key);
      expect((await store.take({ key, cost: 2, limits, factor: 1 })).allowed).toBe(true);
      const drained = await admin.getBuffer(redisKey);
      expect(drained).not.toBeNull();
      const refused = await store.take({ key, cost: 1, limits, factor: 1 });
      expect(refused.allowed).toBe(false);
      // Same bytes: the stored tokens and time still give the bucket at every later time.
      expect(await admin.getBuffer(redisKey)).toEqual(drained);
      // A lower factor applies from the call that brings it, refused or not.
      expect((await store.take({ key, cost: 1, limits, factor: 0.5 })).allowed).toBe(false);
      const halved = (await admin.getBuffer(redisKey))!;
      expect(halved.readDoubleLE(8)).toBeGreaterThanOrEqual(drained!.readDoubleLE(8));
      expect([halved.readDoubleLE(16), halved.readDoubleLE(24)]).toEqual([0.0005, 1]);
      store.close();
    });
  });
}

/** A one-decision script's reply: the integer tokens · 2 + allowed, or "<mantissa · 2^53> <exponent · 2 + allowed>". */
function decode(reply: unknown): { allowed: number; tokens: number } {
  if (typeof reply === 'number') return { allowed: reply % 2, tokens: (reply - (reply % 2)) / 2 };
  expect(reply).toMatch(/^\d+ -?\d+$/);
  const [m, x] = (reply as string).split(' ').map(Number) as [number, number];
  return { allowed: x & 1, tokens: m * 2 ** ((x - (x & 1)) / 2 - 53) };
}

run('the one-decision scripts (take, peek, refund) on Redis', () => {
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis({ host: '127.0.0.1', port: 6379 });
  });
  afterAll(async () => {
    const keys = await admin.keys(`${prefix}one:*`);
    if (keys.length > 0) await admin.del(...keys);
    admin.disconnect();
  });

  it('take the cost, the rate per ms and the capacity at the factor, and reply with no table', async () => {
    const key = `${prefix}one:{k}`;
    const run = (script: string, ...args: string[]) => admin.eval(script, 1, key, ...args);
    // 3 tokens/s, burst 10: a first take of 1 leaves 9, a whole count: one integer, 9 · 2 + 1.
    expect(await run(TOKEN_BUCKET_TAKE_SCRIPT, '1', '0.003', '10')).toBe(19);
    // 0.5 more leaves a fraction (plus what refilled since): a string, read back exactly.
    const half = decode(await run(TOKEN_BUCKET_TAKE_SCRIPT, '0.5', '0.003', '10'));
    const stored = (await admin.getBuffer(key))!;
    expect(half).toEqual({ allowed: 1, tokens: stored.readDoubleLE(0) });
    expect(half.tokens).toBeGreaterThanOrEqual(8.5);
    // A peek of more than there is: refused, nothing written.
    expect(decode(await run(TOKEN_BUCKET_PEEK_SCRIPT, '20', '0.003', '10')).allowed).toBe(0);
    expect(await admin.getBuffer(key)).toEqual(stored);
    // A refund at factor 0 (rate and capacity 0) sends a fourth argument, the ms a full refill
    // takes at factor 1 (10 / 0.003): the key lives that long, plus at most the slack.
    expect(await run(TOKEN_BUCKET_REFUND_SCRIPT, '1', '0', '0', String(10 / 0.003))).toBe(1);
    const zero = (await admin.getBuffer(key))!;
    expect([zero.readDoubleLE(0), zero.readDoubleLE(16), zero.readDoubleLE(24)]).toEqual([0, 0, 0]);
    const pttl = await admin.pttl(key);
    expect(pttl).toBeGreaterThanOrEqual(Math.floor(10 / 0.003) - 100);
    expect(pttl).toBeLessThanOrEqual(Math.ceil(10 / 0.003) + EXPIRY_SLACK_MS + 3);
  });

  it('a store at factor 0 keeps the key for a full refill at factor 1', async () => {
    const store = createRedisStore({ client: admin, prefix: `${prefix}one:`, timeoutMs: 2000 });
    const limits = { ratePerSec: 4, burst: 8 };
    expect((await store.take({ key: 'z', cost: 2, limits, factor: 1 })).allowed).toBe(true);
    const d = await store.take({ key: 'z', cost: 1, limits, factor: 0 });
    expect(d).toMatchObject({ allowed: false, remaining: 0, retryAfterMs: Infinity });
    const pttl = await admin.pttl(store.redisKey('z'));
    expect(pttl).toBeGreaterThanOrEqual(2000 - 100);
    expect(pttl).toBeLessThanOrEqual(2000 + EXPIRY_SLACK_MS + 3);
    store.close();
  });
});
