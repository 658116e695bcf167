// The Redis store publishes its trouble on `spillway:store` itself (errors, fallbacks, breaker
// states), so `createMetrics` shows a store falling back with no code of yours: a Redis of the
// test's own is killed and restarted under real decisions.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import { describe } from 'vitest';
import { STORE_CHANNEL, type StoreMessage } from '../../../src/observability/channels.js';
import { createMetrics } from '../../../src/observability/prometheus/index.js';
import { createRedisStore, type StoreTakeRequest } from '../../../src/stores/redis/index.js';
import { parseExposition, value } from '../../observability/exposition.js';
import { standalone } from './clients.js';
import { redisMissing, startRedisServer, waitFor } from './services.js';

const missing = await redisMissing({ server: true });
const run = missing === undefined ? describe : describe.skip;

const req: StoreTakeRequest = { key: 'k', cost: 1, limits: { ratePerSec: 1, burst: 100 }, factor: 1 };
const messages: StoreMessage[] = [];
const onMessage = (m: unknown) => {
  messages.push(m as StoreMessage);
};
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  unsubscribe(STORE_CHANNEL, onMessage);
  messages.length = 0;
  for (const f of cleanup.splice(0).reverse()) await f();
});

run('the Redis store on spillway:store (own redis-server)', () => {
  it('publishes errors, fallbacks and breaker states; the metrics show the store falling back', async () => {
    const server = await startRedisServer();
    cleanup.push(() => server.stop());
    const client = await standalone('ioredis', server.port);
    cleanup.push(() => client.close());
    const store = createRedisStore({
      client: client.client,
      name: 'shared',
      prefix: 'channel:',
      onError: 'open',
      timeoutMs: 100,
      failureThreshold: 2,
      openMs: 200,
    });
    const registry = new Registry();
    const metrics = createMetrics({ registry });
    cleanup.push(() => metrics.close());
    subscribe(STORE_CHANNEL, onMessage);

    expect((await store.take(req)).allowed).toBe(true);
    expect(messages).toEqual([]); // Redis answers: nothing to report

    await server.kill();
    for (let i = 0; i < 10; i++) expect((await store.take(req)).allowed).toBe(true); // 'open' admits
    const stats = store.stats();
    const errors = messages.filter((m) => m.event === 'error');
    const fallbacks = messages.filter((m) => m.event === 'fallback');
    // Every failed call and every decision without Redis is one message, as stats() counts them.
    expect(errors).toHaveLength(stats.errors);
    expect(fallbacks).toHaveLength(stats.fallbackDecisions);
    expect(fallbacks).toHaveLength(10);
    expect(errors.length).toBeGreaterThanOrEqual(2);
    for (const e of errors) expect(e).toMatchObject({ name: 'shared', operation: 'take' });
    for (const f of fallbacks) expect(f).toMatchObject({ name: 'shared', operation: 'take', policy: 'open' });
    expect(messages.find((m) => m.event === 'state')).toMatchObject({
      name: 'shared',
      operation: 'breaker',
      state: 'open',
      previousState: 'closed',
    });

    let s = parseExposition(await registry.metrics());
    expect(value(s, 'spillway_store_errors_total', { name: 'shared', operation: 'take' })).toBe(stats.errors);
    expect(
      value(s, 'spillway_store_fallbacks_total', { name: 'shared', operation: 'take', policy: 'open' }),
    ).toBe(10);
    expect(value(s, 'spillway_store_circuit_state', { name: 'shared', state: 'open' })).toBe(1);

    await server.start();
    await waitFor('decisions back on Redis', async () => {
      await store.take(req);
      return store.stats().state === 'closed';
    });
    const states = messages.filter((m) => m.event === 'state').map((m) => `${m.previousState}->${m.state}`);
    expect(states.at(-1)).toBe('half-open->closed');
    s = parseExposition(await registry.metrics());
    expect(value(s, 'spillway_store_circuit_state', { name: 'shared', state: 'closed' })).toBe(1);
    expect(value(s, 'spillway_store_circuit_state', { name: 'shared', state: 'open' })).toBe(0);
  });

  it('builds no message while nobody subscribes, and validates its name', async () => {
    expect(() => createRedisStore({ client: {} as never, name: '' })).toThrow();
    const server = await startRedisServer();
    cleanup.push(() => server.stop());
    const client = await standalone('ioredis', server.port);
    cleanup.push(() => client.close());
    const store = createRedisStore({ client: client.client, timeoutMs: 100 });
    expect(store.name).toBe('default');
    await server.kill();
    await store.take(req);
    expect(store.stats().fallbackDecisions).toBe(1);
    expect(messages).toEqual([]);
  });
});
