// Kill, hang and restart a Redis of the test's own: each failure policy answers at once (no
// decision waits longer than the timeout), nothing is thrown or left unhandled, and decisions go
// back to Redis by themselves, the script loaded again, when it answers again.
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createRedisStore,
  type RedisStore,
  type RedisStoreErrorEvent,
  type RedisStoreOptions,
  type StoreDecision,
  type StoreTakeRequest,
} from '../../../src/stores/redis/index.js';
import { type ClientKind, standalone, type TestClient } from './clients.js';
import { type RedisServer, redisMissing, startRedisServer, waitFor } from './services.js';

const missing = await redisMissing({ server: true });
const run = missing === undefined ? describe : describe.skip;

const TIMEOUT_MS = 100;
// What the machine may add to a decision beyond the timeout (a shared 2-core box under test load).
const SCHEDULING_SLACK_MS = 150;
const limits = { ratePerSec: 0.01, burst: 10 };
const req = (key: string): StoreTakeRequest => ({ key, cost: 1, limits, factor: 1 });

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(kind: ClientKind, options: Partial<RedisStoreOptions>) {
  const server = await startRedisServer();
  cleanup.push(() => server.stop());
  const client = await standalone(kind, server.port);
  cleanup.push(() => client.close());
  const store = createRedisStore({
    client: client.client,
    prefix: 'failure:',
    timeoutMs: TIMEOUT_MS,
    failureThreshold: 2,
    openMs: 200,
    ...options,
  });
  const errors: RedisStoreErrorEvent[] = [];
  store.on('error', (e) => errors.push(e));
  return { server, client, store, errors };
}

async function timed(store: RedisStore, key: string, n: number) {
  const decisions: StoreDecision[] = [];
  let maxMs = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    decisions.push(await store.take(req(key)));
    maxMs = Math.max(maxMs, performance.now() - t0);
  }
  return { decisions, maxMs, admitted: decisions.filter((d) => d.allowed).length };
}

async function backToRedis(store: RedisStore, key: string): Promise<StoreDecision> {
  const before = store.stats().redisDecisions;
  let last: StoreDecision | undefined;
  await waitFor('decisions back on Redis', async () => {
    last = await store.take(req(key));
    return store.stats().redisDecisions > before;
  });
  return last!;
}

async function restart(server: RedisServer): Promise<void> {
  await server.start();
}

run('Redis store failure policies (own redis-server)', () => {
  for (const kind of ['ioredis', 'iovalkey', 'node-redis'] as ClientKind[]) {
    it(`${kind}, onError 'local': kill -> a local bucket of burst/expectedInstances at once; restart -> back to Redis, script reloaded`, async () => {
      const { server, store, errors } = await setup(kind, { onError: 'local', expectedInstances: 2 });
      const before = await timed(store, 'k', 3);
      expect(before.admitted).toBe(3);
      expect(store.stats().redisDecisions).toBe(3);

      await server.kill();
      const during = await timed(store, 'k', 40);
      // The local bucket holds 10 / 2 instances = 5 tokens: exactly 5 admitted, the rest refused.
      expect(during.admitted).toBe(5);
      expect(during.decisions.at(-1)!.retryAfterMs).toBeGreaterThan(0);
      expect(during.maxMs).toBeLessThan(TIMEOUT_MS + SCHEDULING_SLACK_MS);
      const stats = store.stats();
      expect(stats.fallbackDecisions).toBe(40);
      expect(stats.state).not.toBe('closed');
      // The breaker keeps Redis out of the path: only a few calls failed, not all 40.
      expect(stats.errors).toBeLessThanOrEqual(4);
      expect(errors.length).toBe(stats.errors);
      expect(errors.every((e) => e.op === 'take' && e.key === 'k')).toBe(true);

      await restart(server);
      const back = await backToRedis(store, 'k');
      // The restarted server is empty: a full bucket, and the script had to be sent again.
      expect(back.allowed).toBe(true);
      expect(back.remaining).toBeCloseTo(9, 3);
      expect(store.stats().scriptLoads).toBeGreaterThanOrEqual(1);
      expect(store.stats().state).toBe('closed');
    });
  }

  it("onError 'open' admits and 'closed' refuses while Redis is dead, without waiting", async () => {
    const open = await setup('ioredis', { onError: 'open' });
    const closed = await setup('node-redis', { onError: 'closed' });
    await open.server.kill();
    await closed.server.kill();
    const o = await timed(open.store, 'k', 30);
    const c = await timed(closed.store, 'k', 30);
    expect(o.admitted).toBe(30);
    expect(c.admitted).toBe(0);
    for (const d of c.decisions) {
      expect(d.retryAfterMs).toBeGreaterThan(0);
      expect(d.retryAfterMs).toBeLessThanOrEqual(200); // until the next probe (openMs)
    }
    expect(Math.max(o.maxMs, c.maxMs)).toBeLessThan(TIMEOUT_MS + SCHEDULING_SLACK_MS);
    await closed.server.start();
    expect((await backToRedis(closed.store, 'k')).allowed).toBe(true);
  });

  it('a hung Redis (SIGSTOP) costs at most the timeout per decision, then nothing; SIGCONT -> back', async () => {
    const { server, store } = await setup('ioredis', { onError: 'closed' });
    expect((await store.take(req('k'))).allowed).toBe(true);
    server.signal('SIGSTOP');
    try {
      const during = await timed(store, 'k', 20);
      expect(during.admitted).toBe(0);
      expect(during.maxMs).toBeLessThan(TIMEOUT_MS + SCHEDULING_SLACK_MS);
      expect(store.stats().timeouts).toBeGreaterThanOrEqual(2);
      expect(store.stats().timeouts).toBeLessThanOrEqual(3);
    } finally {
      server.signal('SIGCONT');
    }
    const back = await backToRedis(store, 'k');
    // The bucket survived (same server). The takes that timed out were still run when the server
    // woke: each charged a token although the policy refused it (documented: a timeout is not a
    // guarantee the take did not happen).
    expect(back.remaining).toBeCloseTo(8 - store.stats().timeouts, 1);
  });

  it('SCRIPT FLUSH: the next decision sends the script again and answers from the same bucket', async () => {
    const { server, store } = await setup('node-redis', {});
    await timed(store, 'k', 4);
    const admin = new Redis({ port: server.port });
    cleanup.push(async () => admin.disconnect());
    const loads = store.stats().scriptLoads; // 1: a new server never saw the script
    await admin.script('FLUSH');
    const d = await store.take(req('k'));
    expect(d.remaining).toBeCloseTo(5, 1);
    expect(store.stats().scriptLoads).toBe(loads + 1);
    expect(store.stats().errors).toBe(0);
  });

  it('concurrent decisions share calls (batching), each still exact', async () => {
    const { server, store } = await setup('ioredis', {});
    const admin = new Redis({ port: server.port });
    cleanup.push(async () => admin.disconnect());
    const calls = async () =>
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
    await store.take(req('warm')); // loads the script
    const before = await calls();
    const small = { ratePerSec: 0.01, burst: 3 };
    const ds = await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        store.take({ key: `k${i % 100}`, cost: 1, limits: small, factor: 1 }),
      ),
    );
    const used = (await calls()) - before;
    expect(ds.filter((d) => d.allowed).length).toBe(300); // 100 keys x burst 3
    expect(used).toBeGreaterThanOrEqual(13); // 400 decisions need at least 13 calls of 32
    expect(used).toBeLessThan(20);
  });

  it('an ioredis client with default options (offline queue on) still does not wait on a dead Redis', async () => {
    const server = await startRedisServer();
    cleanup.push(() => server.stop());
    const client = new Redis({ port: server.port });
    client.on('error', () => {});
    cleanup.push(async () => client.disconnect());
    await new Promise((r) => client.once('ready', r));
    const store = createRedisStore({ client, onError: 'open', timeoutMs: TIMEOUT_MS });
    await store.take(req('k'));
    await server.kill();
    const during = await timed(store, 'k', 20);
    expect(during.admitted).toBe(20);
    expect(during.maxMs).toBeLessThan(TIMEOUT_MS + SCHEDULING_SLACK_MS);
  });
});

export type { TestClient };
