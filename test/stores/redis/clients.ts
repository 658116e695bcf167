// The Redis clients the store supports, each made the way a user would make it.
import { Cluster as IoCluster, Redis as IoRedis } from 'ioredis';
import { Cluster as ValkeyCluster, Redis as ValkeyRedis } from 'iovalkey';
import { createClient, createCluster } from 'redis';
import type { RedisClient } from '../../../src/stores/redis/index.js';

export type ClientKind = 'ioredis' | 'iovalkey' | 'node-redis';

export interface TestClient {
  readonly client: RedisClient;
  close(): Promise<void>;
}

/**
 * A connected standalone client. Offline queues are off and reconnection is quick, as the docs
 * recommend, so a dead server fails commands at once instead of queueing them.
 */
export async function standalone(kind: ClientKind, port = 6379): Promise<TestClient> {
  if (kind === 'node-redis') {
    const c = createClient({
      socket: { host: '127.0.0.1', port, reconnectStrategy: () => 50 },
      disableOfflineQueue: true,
    });
    c.on('error', () => {});
    await c.connect();
    return { client: c as never, close: () => c.close().catch(() => {}) as Promise<void> };
  }
  const Ctor = kind === 'ioredis' ? IoRedis : (ValkeyRedis as unknown as typeof IoRedis);
  const c = new Ctor({
    host: '127.0.0.1',
    port,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 50,
  });
  c.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    c.once('ready', () => resolve());
    c.once('end', () => reject(new Error('could not connect')));
  });
  return {
    client: c as never,
    close: async () => {
      c.disconnect();
    },
  };
}

export type ClusterKind = 'ioredis' | 'iovalkey' | 'node-redis';

export async function cluster(kind: ClusterKind, ports: readonly number[]): Promise<TestClient> {
  if (kind === 'node-redis') {
    const c = createCluster({
      rootNodes: ports.map((p) => ({ socket: { host: '127.0.0.1', port: p } })),
      defaults: { socket: { reconnectStrategy: () => 50 }, disableOfflineQueue: true },
    });
    c.on('error', () => {});
    await c.connect();
    return { client: c as never, close: () => c.close().catch(() => {}) as Promise<void> };
  }
  const Ctor = kind === 'ioredis' ? IoCluster : (ValkeyCluster as unknown as typeof IoCluster);
  const c = new Ctor(
    ports.map((p) => ({ host: '127.0.0.1', port: p })),
    { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0 } },
  );
  c.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    c.once('ready', () => resolve());
    c.once('end', () => reject(new Error('could not connect')));
  });
  return {
    client: c as never,
    close: async () => {
      c.disconnect();
    },
  };
}
