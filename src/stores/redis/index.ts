// `spillway/redis`: the Redis store. Loads no Redis client: the caller passes its own.
export type { BreakerState } from './breaker.js';
export type { IoredisLike, NodeRedisLike, RedisClient, RedisClientKind } from './client.js';
export { RedisStoreError, type RedisStoreErrorKind } from './errors.js';
export {
  EXPIRY_SLACK_MS,
  TOKEN_BUCKET_PEEK_SCRIPT,
  TOKEN_BUCKET_PEEK_SHA,
  TOKEN_BUCKET_REFUND_SCRIPT,
  TOKEN_BUCKET_REFUND_SHA,
  TOKEN_BUCKET_SCRIPT,
  TOKEN_BUCKET_SHA,
  TOKEN_BUCKET_TAKE_SCRIPT,
  TOKEN_BUCKET_TAKE_SHA,
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
