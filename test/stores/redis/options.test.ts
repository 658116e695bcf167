import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import { isConfigError } from '../../../src/errors.js';
import { createRedisStore } from '../../../src/stores/redis/index.js';

// Clients that never connect: the options are checked at construction, before any command.
const io = new Redis({ lazyConnect: true });
const nodeRedis = createClient();

describe('createRedisStore options', () => {
  it('detects the client kind', () => {
    expect(createRedisStore({ client: io }).clientKind).toBe('ioredis');
    expect(createRedisStore({ client: nodeRedis as never }).clientKind).toBe('node-redis');
  });

  it.each([
    [{ client: {} }, 'client'],
    [{ client: io, prefix: 'a{b}:' }, 'prefix'],
    [{ client: io, onError: 'maybe' }, 'onError'],
    [{ client: io, onError: 'local' }, 'expectedInstances'],
    [{ client: io, onError: 'local', expectedInstances: 0 }, 'expectedInstances'],
    [{ client: io, timeoutMs: 0 }, 'timeoutMs'],
    [{ client: io, failureThreshold: 1.5 }, 'failureThreshold'],
    [{ client: io, openMs: -1 }, 'openMs'],
    [{ client: io, localMaxKeys: 0 }, 'localMaxKeys'],
    [{ client: io, timeout: 5 }, 'createRedisStore.timeout'],
  ])('rejects %o naming `%s`', (options, option) => {
    let error: unknown;
    try {
      createRedisStore(options as never);
    } catch (err) {
      error = err;
    }
    expect(isConfigError(error)).toBe(true);
    expect((error as { option: string }).option).toBe(option);
  });

  it('hash-tags the key so everything about one key lands in one Cluster slot', () => {
    expect(createRedisStore({ client: io, prefix: 'rl:' }).redisKey('user:1')).toBe('rl:{user:1}');
  });
});
