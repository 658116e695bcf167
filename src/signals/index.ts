// The signals layer's public surface: factories, the `signals` namespace, parsers and types.
import { cpu } from './cpu.js';
import { custom } from './custom.js';
import { eventLoopDelay } from './event-loop-delay.js';
import { eventLoopUtilization } from './event-loop-utilization.js';
import { heapMemory, memory, rssMemory } from './memory.js';
import { queueDepth } from './queue-depth.js';
import { refusalShare } from './refusal-share.js';
import { queueTime } from './queue-time.js';

export {
  type CgroupLimit,
  type CgroupReadOptions,
  type ProcCgroups,
  parseCgroupV1CpuQuota,
  parseCgroupV1MemoryLimit,
  parseCgroupV2CpuMax,
  parseCgroupV2MemoryMax,
  parseProcCgroup,
  readCgroupCpuLimit,
  readCgroupMemoryLimit,
  UNLIMITED_BYTES,
} from './cgroup.js';
export { CPU_DEFAULTS, type CpuOptions, cpu } from './cpu.js';
export { type CpuCapacity, type CpuCapacityOptions, cpuCapacity } from './cpu-capacity.js';
export {
  createTreeCpuSampler,
  type ProcessCpuTime,
  sampleTreeCpu,
  type TreeCpuSample,
  type TreeCpuSamplerOptions,
} from './cpu-tree.js';
export { type CustomSignalOptions, custom } from './custom.js';
export { type DefaultSignalsOptions, defaultSignals } from './defaults.js';
export {
  type DelayHistogram,
  EVENT_LOOP_DELAY_DEFAULTS,
  type EventLoopDelayOptions,
  eventLoopDelay,
} from './event-loop-delay.js';
export {
  EVENT_LOOP_UTILIZATION_DEFAULTS,
  type EluReader,
  type EventLoopUtilizationOptions,
  eventLoopUtilization,
} from './event-loop-utilization.js';
export {
  type HeapMemoryOptions,
  heapMemory,
  MEMORY_DEFAULTS,
  type MemoryOptions,
  memory,
  memoryLimitBytes,
  type RssMemoryOptions,
  rssMemory,
} from './memory.js';
export { type QueueDepthOptions, queueDepth } from './queue-depth.js';
export {
  type AdmissionOutcome,
  REFUSAL_SHARE_DEFAULTS,
  type RefusalShareOptions,
  type RefusalShareSignal,
  refusalShare,
} from './refusal-share.js';
export { QUEUE_TIME_DEFAULTS, type QueueTimeOptions, type QueueTimeSource, queueTime } from './queue-time.js';
export type { Signal, SignalFailureMode } from './types.js';

/** The built-in signal factories, as one namespace: `signals.cpu({ target: 0.7 })`. */
export const signals = Object.freeze({
  eventLoopDelay,
  eventLoopUtilization,
  cpu,
  heapMemory,
  rssMemory,
  memory,
  queueDepth,
  refusalShare,
  queueTime,
  custom,
});
