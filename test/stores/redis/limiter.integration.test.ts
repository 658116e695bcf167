// createLimiter({ store: createRedisStore(...) }): two limiters (two app servers) share each key's
// quota through Redis, priorities reach the shared bucket through the factor, and a factor cut on
// one instance shrinks the shared bucket for both.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLimiter, ManualFactor } from '../../../src/index.js';
import { createRedisStore } from '../../../src/stores/redis/index.js';
import { standalone, type TestClient } from './clients.js';
import { redisMissing } from './services.js';

const missing = await redisMissing();
const run = missing === undefined ? describe : describe.skip;
const prefix = `spillway-test:limiter:${process.pid}:`;

run('createLimiter over the Redis store', () => {
  let a: TestClient;
  let b: TestClient;
  beforeAll(async () => {
    a = await standalone('ioredis');
    b = await standalone('node-redis');
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });

  it('two instances on separate connections share one quota per key', async () => {
    const make = (c: TestClient) =>
      createLimiter({ store: createRedisStore({ client: c.client, prefix }), ratePerSec: 0.01, burst: 6 });
    const one = make(a);
    const two = make(b);
    const key = randomUUID();
    const ds = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? one : two).take(key)));
    expect(ds.filter((d) => d.allowed).length).toBe(6);
    const refused = ds.find((d) => !d.allowed)!;
    expect(refused.reason).toBe('limited');
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect((await one.take(randomUUID())).allowed).toBe(true); // other keys are untouched
  });

  it("one instance's factor cut shrinks the shared bucket for every instance", async () => {
    const factor = new ManualFactor(1);
    const cut = createLimiter({
      store: createRedisStore({ client: a.client, prefix }),
      ratePerSec: 0.01,
      burst: 10,
      factor,
    });
    const calm = createLimiter({
      store: createRedisStore({ client: b.client, prefix }),
      ratePerSec: 0.01,
      burst: 10,
    });
    const key = randomUUID();
    expect((await calm.take(key)).allowed).toBe(true); // 9 left
    factor.set(0.3); // capacity 3 for the cut instance's callers
    expect((await cut.take(key)).allowed).toBe(true); // clamped to 3, then 2 left
    const rest = await Promise.all(Array.from({ length: 5 }, () => calm.take(key)));
    expect(rest.filter((d) => d.allowed).length).toBe(2);
  });
});
