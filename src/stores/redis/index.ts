// `spillway/redis`: the Redis store. Loads no Redis client: the caller passes its own.
export type { BreakerState } from './breaker.js';
export type { IoredisLike, NodeRedisLike, RedisClient, RedisClientKind } from './client.js';
export { RedisStoreError, type RedisStoreErrorKind } from './errors.js';
export {
  EXPIRY_SLACK_MS,
  TOKEN_BUCKET_ONE_SCRIPT,
  TOKEN_BUCKET_ONE_SHA,
  TOKEN_BUCKET_SCRIPT,
  TOKEN_BUCKET_SHA,
} from './script.js';
export {
  createRedisStore,
  type RedisFailurePolicy,
  RedisStore,
  type RedisStoreErrorEvent,
  type RedisStoreEvents,
  type RedisStoreOptions,
  type RedisStoreStats,
} from './store.js';
export type { Store, StoreDecision, StoreLimits, StoreTakeRequest } from '../types.js';
