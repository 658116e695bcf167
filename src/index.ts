// The public API of `spillway`. Nothing but exports.
export { type Clock, ManualClock, systemClock, type TimerHandle, type TimerOptions } from './clock.js';
export type { LoopDelaySource } from './loop-delay.js';
export {
  AbortError,
  ConfigError,
  isAbortError,
  isPoolOverloadedError,
  PoolOverloadedError,
  isConfigError,
  SpillwayError,
  type SpillwayErrorCode,
} from './errors.js';
export { FactorBroadcast, ManualFactor } from './limiters/factor.js';
export { effectiveFactor, PRIORITY_LEVELS, priorityLevel } from './limiters/priority.js';
export { type AcquireOptions, TokenBucket, type TokenBucketOptions } from './limiters/token-bucket.js';
export type {
  Decision,
  DecisionReason,
  FactorSource,
  Priority,
  RateAlgorithm,
} from './limiters/types.js';
export {
  type AdmitOptions,
  SHEDDER_DEFAULTS,
  Shedder,
  type ShedderOptions,
  type ShedderState,
} from './limiters/shedder.js';
export {
  CPU_DEFAULTS,
  type CpuCapacity,
  type CpuOptions,
  type CustomSignalOptions,
  cpuCapacity,
  type DefaultSignalsOptions,
  defaultSignals,
  EVENT_LOOP_DELAY_DEFAULTS,
  EVENT_LOOP_UTILIZATION_DEFAULTS,
  type EventLoopDelayOptions,
  type EventLoopUtilizationOptions,
  type HeapMemoryOptions,
  MEMORY_DEFAULTS,
  type MemoryOptions,
  type QueueDepthOptions,
  type RefusalShareOptions,
  type RefusalShareSignal,
  QUEUE_TIME_DEFAULTS,
  type QueueTimeOptions,
  type QueueTimeSource,
  type RssMemoryOptions,
  type Signal,
  type SignalFailureMode,
  signals,
  type TreeCpuSample,
} from './signals/index.js';
export {
  type ClusterLike,
  type CreateGovernorOptions,
  createGovernor,
  type DecisionRecord,
  type DominantSignal,
  type FleetFactor,
  type FleetFactorMessage,
  type FleetFactorOptions,
  type FleetFactorSharer,
  fleetFactor,
  GOVERNOR_DEFAULTS,
  type Governor,
  type GovernorEvents,
  type GovernorMode,
  type GovernorOptions,
  type GovernorSnapshot,
  type GovernorState,
  type MinFactor,
  minFactor,
  type ProcessLike,
  type ShareFleetFactorOptions,
  type SignalErrorEvent,
  type SignalStatus,
  shareFleetFactor,
  type WorkerLike,
} from './governor/index.js';
export {
  type BucketLimits,
  createLimiter,
  type KeyedAcquireOptions,
  type KeyedDecision,
  type KeyedAlgorithm,
  type KeyedLimiter,
  type KeyedLimiterOptions,
  KeyedWindowLimiter,
  type KeyedWindowLimiterOptions,
  MAX_KEY_BYTES,
  type StoreLimiter,
  type StoreLimiterOptions,
  type TakeOptions,
} from './limiters/keyed-limiter.js';
export type { FactorOption } from './limiters/factor-option.js';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory.js';
export type { Store, StoreDecision, StoreLimits, StoreTakeRequest } from './stores/types.js';
export { FixedWindow } from './limiters/fixed-window.js';
export {
  LeakyBucket,
  type LeakyBucketOptions,
  type ScheduleOptions,
  type ShapedDecision,
} from './limiters/leaky-bucket.js';
export { SlidingWindowCounter, SlidingWindowLog } from './limiters/sliding-window.js';
export type { WindowOptions } from './limiters/window.js';
export {
  type AdaptiveLimitOptions,
  CODEL_DEFAULTS,
  CONCURRENCY_DEFAULTS,
  type CodelOptions,
  type ConcurrencyAcquireOptions,
  type ConcurrencyDecision,
  type ConcurrencyEvents,
  ConcurrencyLimiter,
  type ConcurrencyLimiterOptions,
  type ConcurrencyLimiterUpdate,
  type ConcurrencyPermit,
  type ConcurrencyRefusal,
  type ConcurrencyRefusalReason,
  type ConcurrencySnapshot,
  type ReleaseOptions,
  VEGAS_DEFAULTS,
} from './limiters/concurrency/index.js';
