// The HTTP guard with a Redis-backed key limiter in its default mode (no maxWaitMs), over real HTTP
// on 127.0.0.1, for node:http, Express and Fastify. Two guarded servers stand for two app
// instances, each with its own connection (one ioredis, one node-redis) to one redis-server of the
// test's own: one client's quota holds across both; Redis killed -> each failure policy answers
// at once; restarted -> the two share one bucket again.
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { ADAPTERS, get, type Running, until } from '../../adapters/guarded-apps.js';
import { Redis } from 'ioredis';
import { createLimiter } from '../../../src/index.js';
import type { Store } from '../../../src/stores/types.js';
import {
  createRedisStore,
  type RedisFailurePolicy,
  type RedisStore,
} from '../../../src/stores/redis/index.js';
import { type ClientKind, standalone } from './clients.js';
import { type RedisServer, redisMissing, startRedisServer, waitFor } from './services.js';

const missing = await redisMissing({ server: true });
const run = missing === undefined ? describe : describe.skip;

// Generous for a loaded 2-core machine (a decision that Redis answers late is decided by the policy,
// and the shared-quota checks below would see it), still far below what a dead Redis costs without it.
const TIMEOUT_MS = 500;
// What a loaded 2-core machine may add to one HTTP request beyond the store's timeout. A dead Redis
// without the timeout and the breaker would hold requests for seconds (reconnects, offline queue).
const HTTP_SLACK_MS = 400;
const BURST = 6;
// 20 s per token: nothing refills during a test.
const RATE = 0.05;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

interface Instance {
  app: Running;
  store: RedisStore;
}

interface Answer {
  status: number;
  ms: number;
  retryAfter: number | undefined;
  /** `r` of the RateLimit field, when sent. */
  remaining: number | undefined;
  instance: number;
}

async function fleet(
  start: (typeof ADAPTERS)[number][1],
  server: RedisServer,
  policy: RedisFailurePolicy,
  openMs = 200,
) {
  const instances: Instance[] = [];
  for (const kind of ['ioredis', 'node-redis'] as ClientKind[]) {
    const client = await standalone(kind, server.port);
    cleanup.push(() => client.close());
    const store = createRedisStore({
      client: client.client,
      prefix: 'guard:',
      onError: policy,
      expectedInstances: 2,
      timeoutMs: TIMEOUT_MS,
      failureThreshold: 2,
      openMs,
    });
    store.on('error', () => {});
    // The first call sends the script (NOSCRIPT, then EVAL): done here, before anything is timed.
    await waitFor('the store deciding on Redis', async () => {
      await store.take({ key: 'warm-up', cost: 1, limits: { ratePerSec: 1, burst: 1 }, factor: 1 });
      return store.stats().redisDecisions > 0;
    });
    const limiter = createLimiter({ store, ratePerSec: RATE, burst: BURST });
    const app = await start({ limiter, key: (req) => req.headers['x-user'] as string });
    cleanup.push(() => app.close());
    instances.push({ app, store });
  }
  return instances;
}

/** `n` requests for `user`, one at a time, to the instances in turn (or all to `only`). */
async function send(instances: Instance[], user: string, n: number, only?: number): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < n; i++) {
    const instance = only ?? i % instances.length;
    const t0 = performance.now();
    const res = await get(`${instances[instance]!.app.url}/`, { 'x-user': user }).answered;
    const ms = performance.now() - t0;
    const ra = res.headers['retry-after'];
    const rl = /;r=(\d+)/.exec(String(res.headers.ratelimit ?? ''));
    out.push({
      status: res.status,
      ms,
      retryAfter: ra === undefined ? undefined : Number(ra),
      remaining: rl === null ? undefined : Number(rl[1]),
      instance,
    });
  }
  return out;
}

const statuses = (answers: Answer[]) => answers.map((a) => a.status);
const redisDecisions = (instances: Instance[]) => instances.map((i) => i.store.stats().redisDecisions);
const fallbacks = (instances: Instance[]) => instances.map((i) => i.store.stats().fallbackDecisions);

/** The quota is one bucket in Redis: BURST admitted in all, the count going down across instances. */
function expectShared(answers: Answer[]): void {
  expect(statuses(answers)).toEqual([...Array(BURST).fill(200), ...Array(answers.length - BURST).fill(429)]);
  expect(answers.slice(0, BURST).map((a) => a.remaining)).toEqual(
    Array.from({ length: BURST }, (_, i) => BURST - 1 - i),
  );
  for (const a of answers.slice(BURST)) {
    expect(a.remaining).toBe(0);
    // The wait for one token at 0.05/s, capped by the guard's maxRetryAfterSec (60).
    expect(a.retryAfter).toBeGreaterThanOrEqual(19);
    expect(a.retryAfter).toBeLessThanOrEqual(20);
  }
}

run('the HTTP guard over Redis, default mode (own redis-server)', () => {
  for (const [name, start] of ADAPTERS) {
    for (const policy of ['local', 'closed', 'open'] as const) {
      it(`${name}, onError '${policy}': shared quota; Redis killed -> the policy at once; restarted -> shared again`, async () => {
        const server = await startRedisServer();
        cleanup.push(() => server.stop());
        const instances = await fleet(start, server, policy);

        // 1. One bucket for both instances.
        const base = fallbacks(instances);
        expectShared(await send(instances, 'u1', BURST + 4));
        expect(fallbacks(instances)).toEqual(base); // none of it decided by the policy
        expect(redisDecisions(instances).every((n) => n >= (BURST + 4) / 2)).toBe(true);

        // 2. Redis is gone: every answer comes from the policy, none waits on Redis.
        await server.kill();
        const during = await send(instances, 'u2', 12);
        expect(Math.max(...during.map((a) => a.ms))).toBeLessThan(TIMEOUT_MS + HTTP_SLACK_MS);
        expect(fallbacks(instances).map((n, i) => n - base[i]!)).toEqual([6, 6]);
        if (policy === 'open') {
          expect(statuses(during)).toEqual(Array(12).fill(200));
        } else if (policy === 'closed') {
          // Not the client's quota: the limiter cannot decide, 503 with a short Retry-After.
          expect(statuses(during)).toEqual(Array(12).fill(503));
          for (const a of during) {
            expect(a.retryAfter).toBeGreaterThanOrEqual(1);
            expect(a.retryAfter).toBeLessThanOrEqual(2); // 200 ms to the next probe, rounded up, jittered
          }
        } else {
          // Each instance decides alone with burst / expectedInstances = 3 tokens.
          for (const i of [0, 1]) {
            const mine = during.filter((a) => a.instance === i);
            expect(statuses(mine)).toEqual([200, 200, 200, 429, 429, 429]);
            expect(mine.slice(0, 3).map((a) => a.remaining)).toEqual([2, 1, 0]);
          }
        }

        // 3. Redis is back (empty): decisions return to it by themselves, the script is sent again,
        // and the quota is shared again.
        const loads = () => instances.reduce((n, i) => n + i.store.stats().scriptLoads, 0);
        const loadsBefore = loads();
        await server.start();
        const before = redisDecisions(instances);
        await waitFor('both instances deciding on Redis again', async () => {
          await send(instances, 'probe', 2);
          return redisDecisions(instances).every((n, i) => n > before[i]!);
        });
        const fallbacksBefore = fallbacks(instances);
        expectShared(await send(instances, 'u3', BURST + 2));
        expect(fallbacks(instances)).toEqual(fallbacksBefore);
        expect(instances.every((i) => i.store.stats().state === 'closed')).toBe(true);
        expect(loads()).toBeGreaterThan(loadsBefore);
      });
    }
  }

  it("node:http, a hung Redis (SIGSTOP), onError 'open': no request waits past the timeout; SIGCONT -> shared again", async () => {
    const server = await startRedisServer();
    cleanup.push(() => server.stop());
    // The circuit stays open longer than the requests take, so only the first two of each
    // instance wait for the timeout.
    const instances = await fleet(ADAPTERS[0][1], server, 'open', 5000);
    expectShared(await send(instances, 'u1', BURST + 1));
    server.signal('SIGSTOP');
    let during: Answer[];
    try {
      during = await send(instances, 'u2', 10);
    } finally {
      server.signal('SIGCONT');
    }
    expect(statuses(during)).toEqual(Array(10).fill(200));
    expect(Math.max(...during.map((a) => a.ms))).toBeLessThan(TIMEOUT_MS + HTTP_SLACK_MS);
    // The breaker opened after two timeouts on each instance: the rest did not wait at all.
    for (const i of instances) expect(i.store.stats().timeouts).toBe(2);
    const before = redisDecisions(instances);
    await waitFor('both instances deciding on Redis again', async () => {
      await send(instances, 'probe', 2);
      return redisDecisions(instances).every((n, i) => n > before[i]!);
    });
    expectShared(await send(instances, 'u3', BURST + 1));
  });

  for (const [name, start] of ADAPTERS) {
    it(`${name}: a client that leaves while Redis decides (CLIENT PAUSE) is refunded once, never handled`, async () => {
      const server = await startRedisServer();
      cleanup.push(() => server.stop());
      const client = await standalone('ioredis', server.port);
      cleanup.push(() => client.close());
      const redis = createRedisStore({ client: client.client, prefix: 'guard:', timeoutMs: 5000 });
      // The real store, with its calls counted.
      const calls = { take: 0, refund: 0 };
      const store: Store = {
        take: (r) => {
          calls.take++;
          return redis.take(r);
        },
        peek: (r) => redis.peek(r),
        refund: (r) => {
          calls.refund++;
          return redis.refund(r);
        },
        reset: (k) => redis.reset(k),
        close: () => redis.close(),
      };
      const limiter = createLimiter({ store, ratePerSec: RATE, burst: BURST });
      const app = await start({ limiter, key: (req) => req.headers['x-user'] as string });
      cleanup.push(() => app.close());
      expect((await limiter.take('u')).remaining).toBeCloseTo(BURST - 1, 3); // script loaded, 5 left

      const admin = new Redis({ port: server.port });
      cleanup.push(async () => admin.disconnect());
      await admin.call('CLIENT', 'PAUSE', '700', 'ALL');
      const closed = app.nextSocketClosed();
      const { req } = get(`${app.url}/`, { 'x-user': 'u' });
      await until(() => calls.take === 2); // the guard's take is on the wire, held by the pause
      req.destroy();
      await closed;
      // The pause ends, Redis admits the take, the guard gives it back: one refund, no handler.
      await until(() => calls.refund === 1, 10_000);
      expect(app.handled()).toBe(0);
      const left = await limiter.peek('u');
      // 5 tokens and what refilled meanwhile (0.05/s): not 4 (a leaked charge), not 6 (two refunds).
      expect(left.remaining).toBeGreaterThanOrEqual(BURST - 1 - 1e-6);
      expect(left.remaining).toBeLessThan(BURST - 0.5);
      expect(calls).toEqual({ take: 2, refund: 1 });
      expect(redis.stats()).toMatchObject({ errors: 0, fallbackDecisions: 0 });
      expect(app.guard.inFlight).toBe(0);
    });
  }
});
