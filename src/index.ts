// The public API of `spillway`. Nothing but exports.
export { type Clock, ManualClock, systemClock, type TimerHandle } from './clock.js';
export {
  AbortError,
  ConfigError,
  isAbortError,
  isConfigError,
  isRejectedError,
  RejectedError,
  SpillwayError,
  type SpillwayErrorCode,
} from './errors.js';
export { ManualFactor } from './limiters/factor.js';
export { effectiveFactor, PRIORITY_LEVELS, priorityLevel } from './limiters/priority.js';
export { type AcquireOptions, TokenBucket, type TokenBucketOptions } from './limiters/token-bucket.js';
export type {
  Decision,
  DecisionReason,
  FactorSource,
  Priority,
  RateAlgorithm,
} from './limiters/types.js';
