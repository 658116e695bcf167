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
  custom,
  cpu,
  type DefaultSignalsOptions,
  defaultSignals,
  EVENT_LOOP_DELAY_DEFAULTS,
  EVENT_LOOP_UTILIZATION_DEFAULTS,
  type EventLoopDelayOptions,
  type EventLoopUtilizationOptions,
  eventLoopDelay,
  eventLoopUtilization,
  type HeapMemoryOptions,
  heapMemory,
  MEMORY_DEFAULTS,
  type MemoryOptions,
  memory,
  memoryLimitBytes,
  type QueueDepthOptions,
  queueDepth,
  type RssMemoryOptions,
  rssMemory,
  type Signal,
  type SignalFailureMode,
  sampleTreeCpu,
  signals,
  type TreeCpuSample,
} from './signals/index.js';
