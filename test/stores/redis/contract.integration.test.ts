// The store contract against real Redis on 127.0.0.1:6379, once per client kind.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createRedisStore, EXPIRY_SLACK_MS, type RedisStore } from '../../../src/stores/redis/index.js';
import { storeContract } from '../../../src/testing/index.js';
import { type ClientKind, standalone, type TestClient } from './clients.js';
import { redisMissing } from './services.js';

const missing = await redisMissing();
const run = missing === undefined ? describe : describe.skip;
const prefix = `spillway-test:contract:${process.pid}:`;

const variants: [ClientKind, boolean][] = [
  ['ioredis', true],
  ['iovalkey', true],
  ['node-redis', true],
  ['ioredis', false],
];
for (const [kind, batch] of variants) {
  run(`Redis store on ${kind}${batch ? '' : ', batching off'}`, () => {
    let client: TestClient;
    let admin: Redis;
    beforeAll(async () => {
      client = await standalone(kind);
      admin = new Redis({ host: '127.0.0.1', port: 6379 });
    });
    afterAll(async () => {
      await client.close();
      admin.disconnect();
    });

    storeContract({
      name: `${kind}${batch ? '' : ' (batch: false)'}`,
      describe: run,
      it,
      createStore: () => createRedisStore({ client: client.client, prefix, timeoutMs: 2000, batch }),
      advance: (ms) => sleep(ms),
      holdsKey: async (store, key) => (await admin.exists((store as RedisStore).redisKey(key))) === 1,
      expirySlackMs: EXPIRY_SLACK_MS,
      realTimeSlackMs: 200,
    });
  });
}
