export { CODEL_DEFAULTS, StandingQueue } from './codel.js';
export { ConcurrencyLimiter } from './limiter.js';
export {
  type AdaptiveLimitOptions,
  CONCURRENCY_DEFAULTS,
  type CodelOptions,
  type ConcurrencyLimiterOptions,
  type ConcurrencyLimiterUpdate,
} from './options.js';
export type {
  ConcurrencyAcquireOptions,
  ConcurrencyDecision,
  ConcurrencyEvents,
  ConcurrencyPermit,
  ConcurrencyRefusal,
  ConcurrencyRefusalReason,
  ConcurrencySnapshot,
  ReleaseOptions,
} from './types.js';
export { VEGAS_DEFAULTS, VegasEstimator, type VegasOptions, vegasLambda, vegasStep } from './vegas.js';
