// Several instances (one store and one connection each, standing for app servers) share one key on
// the shared Redis: over the whole run their admissions stay within burst + rate·T, and 1,000
// concurrent takes admit exactly the burst.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore, type RedisStore, type StoreTakeRequest } from '../../../src/stores/redis/index.js';
import { type ClientKind, standalone, type TestClient } from './clients.js';
import { redisMissing } from './services.js';

const missing = await redisMissing();
const run = missing === undefined ? describe : describe.skip;
const prefix = `spillway-test:fleet:${process.pid}:`;
const KINDS: ClientKind[] = ['ioredis', 'iovalkey', 'node-redis', 'ioredis', 'node-redis', 'iovalkey'];

run('a fleet sharing one key through Redis', () => {
  const clients: TestClient[] = [];
  const stores: RedisStore[] = [];
  beforeAll(async () => {
    for (const kind of KINDS) {
      const c = await standalone(kind);
      clients.push(c);
      stores.push(createRedisStore({ client: c.client, prefix, timeoutMs: 5000 }));
    }
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
  });

  it('1,000 concurrent takes from six instances admit exactly the burst', async () => {
    const req: StoreTakeRequest = {
      key: randomUUID(),
      cost: 1,
      limits: { ratePerSec: 0.001, burst: 100 },
      factor: 1,
    };
    const all = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => stores[i % stores.length]!.take(req)),
    );
    expect(all.filter((d) => d.allowed).length).toBe(100);
    expect(stores.every((s) => s.stats().errors === 0)).toBe(true);
  });

  it('over a run, the fleet admits no more than burst + rate·T, and uses its quota', async () => {
    const ratePerSec = 200;
    const burst = 20;
    const req: StoreTakeRequest = { key: randomUUID(), cost: 1, limits: { ratePerSec, burst }, factor: 1 };
    const runMs = 1000;
    const t0 = performance.now();
    let admitted = 0;
    let refused = 0;
    // Each instance keeps 8 takes in flight until the run ends (bounded by time and count).
    const worker = async (store: RedisStore) => {
      for (let n = 0; n < 20_000 && performance.now() - t0 < runMs; n++) {
        const d = await store.take(req);
        if (d.allowed) admitted++;
        else refused++;
      }
    };
    await Promise.all(stores.flatMap((s) => Array.from({ length: 8 }, () => worker(s))));
    const elapsedS = (performance.now() - t0) / 1000;
    // Every decision's Redis time lies inside [t0, end], so the bound holds over that span.
    expect(admitted).toBeLessThanOrEqual(burst + ratePerSec * elapsedS);
    expect(refused).toBeGreaterThan(0); // demand exceeded the quota, so the bound was tested
    // The shared bucket is not starved either: at least half the quota over the run.
    expect(admitted).toBeGreaterThanOrEqual((0.5 * ratePerSec * runMs) / 1000);
  });
});
