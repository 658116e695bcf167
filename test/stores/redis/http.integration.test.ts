// Two HTTP servers (two app instances, each with its own Redis connection) guarded by a key limiter
// whose buckets live in Redis, in queueing mode (`maxWaitMs > 0`: the key stage awaits `acquire`):
// one client's quota holds across both, over real HTTP on 127.0.0.1. The default mode, failures and
// restarts: guard.integration.test.ts.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { protect } from '../../../src/adapters/http.js';
import { createLimiter } from '../../../src/index.js';
import { createRedisStore, type RedisStore } from '../../../src/stores/redis/index.js';
import { type ClientKind, standalone, type TestClient } from './clients.js';
import { redisMissing } from './services.js';

const missing = await redisMissing();
const run = missing === undefined ? describe : describe.skip;
const prefix = `spillway-test:http:${process.pid}:`;

run('the HTTP guard over the Redis store', () => {
  const clients: TestClient[] = [];
  const servers: Server[] = [];
  const stores: RedisStore[] = [];
  const urls: string[] = [];
  beforeAll(async () => {
    for (const kind of ['ioredis', 'node-redis'] as ClientKind[]) {
      const c = await standalone(kind);
      clients.push(c);
      const store = createRedisStore({ client: c.client, prefix });
      stores.push(store);
      const limiter = createLimiter({ store, ratePerSec: 0.01, burst: 4 });
      const server = createServer(
        protect((_req, res) => res.end('ok'), {
          limiter,
          maxWaitMs: 50,
          key: (req) => req.headers['x-user'] as string | undefined,
        }),
      );
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      servers.push(server);
      urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
  });
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    for (const c of clients) await c.close();
  });

  it("one client's quota holds across two instances; other clients are untouched", async () => {
    const user = randomUUID();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${urls[i % 2]}/`, { headers: { 'x-user': user } });
      await res.arrayBuffer();
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(statuses.filter((s) => s === 200).length).toBe(4);
    expect(statuses.filter((s) => s === 429).length).toBe(6);
    const other = await fetch(`${urls[1]}/`, { headers: { 'x-user': randomUUID() } });
    expect(other.status).toBe(200);
    expect(stores.reduce((n, s) => n + s.stats().redisDecisions, 0)).toBeGreaterThanOrEqual(11);
    expect(stores.every((s) => s.stats().fallbackDecisions === 0)).toBe(true);
  });
});
