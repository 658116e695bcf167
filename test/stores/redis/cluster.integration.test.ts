// A real three-master Redis Cluster on free local ports: the store contract on each cluster client,
// and one master killed and restarted mid-run.
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisStore,
  EXPIRY_SLACK_MS,
  type RedisStore,
  type StoreDecision,
  type StoreTakeRequest,
} from '../../../src/stores/redis/index.js';
import { storeContract } from '../../../src/testing/index.js';
import { type ClusterKind, cluster, type TestClient } from './clients.js';
import { type RedisCluster, redisMissing, startCluster, waitFor } from './services.js';

const missing = await redisMissing({ server: true });
const run = missing === undefined ? describe : describe.skip;

run('Redis store on a three-master Cluster', () => {
  let redis: RedisCluster;
  let admin: Cluster;
  const clients = new Map<ClusterKind, TestClient>();
  beforeAll(async () => {
    redis = await startCluster();
    admin = new Cluster(redis.ports.map((port) => ({ host: '127.0.0.1', port })));
    admin.on('error', () => {});
    for (const kind of ['ioredis', 'iovalkey', 'node-redis'] as ClusterKind[]) {
      clients.set(kind, await cluster(kind, redis.ports));
    }
  }, 60_000);
  afterAll(async () => {
    for (const c of clients.values()) await c.close();
    admin?.disconnect();
    await redis?.stop();
  });

  for (const kind of ['ioredis', 'iovalkey', 'node-redis'] as ClusterKind[]) {
    storeContract({
      name: `${kind} Cluster`,
      describe,
      it,
      createStore: () =>
        createRedisStore({ client: clients.get(kind)!.client, prefix: 'c:', timeoutMs: 2000 }),
      advance: (ms) => sleep(ms),
      holdsKey: async (store, key) => (await admin.exists((store as RedisStore).redisKey(key))) === 1,
      expirySlackMs: EXPIRY_SLACK_MS,
      realTimeSlackMs: 200,
    });
  }

  it('detects the cluster clients', () => {
    expect(createRedisStore({ client: clients.get('ioredis')!.client }).clientKind).toBe('ioredis-cluster');
    expect(createRedisStore({ client: clients.get('node-redis')!.client }).clientKind).toBe(
      'node-redis-cluster',
    );
  });

  for (const kind of ['ioredis', 'node-redis'] as ClusterKind[]) {
    it(`${kind}: one master killed -> the policy answers within the timeout; restarted -> back to Redis`, async () => {
      const store = createRedisStore({
        client: clients.get(kind)!.client,
        prefix: `kill-${kind}:`,
        onError: 'local',
        expectedInstances: 2,
        timeoutMs: 100,
        failureThreshold: 2,
        openMs: 200,
      });
      const key = `user-${kind}`;
      const req: StoreTakeRequest = { key, cost: 1, limits: { ratePerSec: 0.01, burst: 10 }, factor: 1 };
      expect((await store.take(req)).allowed).toBe(true);
      const slot = Number(await admin.cluster('KEYSLOT', store.redisKey(key)));
      const owner = redis.servers.find((s) => ownsSlot(admin, s.port, slot))!;
      expect(owner).toBeDefined();
      await owner.kill();
      let maxMs = 0;
      const during: StoreDecision[] = [];
      for (let i = 0; i < 30; i++) {
        const t0 = performance.now();
        during.push(await store.take(req));
        maxMs = Math.max(maxMs, performance.now() - t0);
      }
      expect(maxMs).toBeLessThan(100 + 150);
      expect(during.filter((d) => d.allowed).length).toBe(5); // local: 10 / 2 instances
      expect(store.stats().fallbackDecisions).toBe(30);

      await owner.start();
      const before = store.stats().redisDecisions;
      await waitFor(
        'decisions back on the restarted master',
        async () => {
          await store.take(req);
          return store.stats().redisDecisions > before;
        },
        20_000,
      );
      expect(store.stats().scriptLoads).toBeGreaterThanOrEqual(1);
      expect(store.stats().state).toBe('closed');
    }, 40_000);
  }
});

function ownsSlot(admin: Cluster, port: number, slot: number): boolean {
  // ioredis keeps the slot table: slots[slot] lists "host:port" of the owner first.
  const owners = (admin as unknown as { slots: string[][] }).slots[slot];
  return owners?.[0] === `127.0.0.1:${port}`;
}
