/**
 * How much CPU this process may use, in cores: the machine's cores available to it
 * (`os.availableParallelism()`, which honours CPU affinity) and, in a container, the cgroup quota.
 */
import { availableParallelism } from 'node:os';
import { type CgroupReadOptions, readCgroupCpuLimit } from './cgroup.js';

export interface CpuCapacity {
  /** CPU the process may use, in cores (may be fractional under a quota: 0.5 = half a core). */
  cores: number;
  /** What bounded it: `'cores'` or the cgroup file that set the quota. */
  source: string;
}

export interface CpuCapacityOptions extends CgroupReadOptions {
  /** The machine's cores (tests inject). @default os.availableParallelism() */
  cores?: number;
}

/** min(available cores, cgroup CPU quota). Reads the cgroup files once per call; never throws. */
export function cpuCapacity(options: CpuCapacityOptions = {}): CpuCapacity {
  const cores = options.cores ?? availableParallelism();
  const quota = readCgroupCpuLimit(options);
  if (quota.value !== undefined && quota.value < cores) return { cores: quota.value, source: quota.source };
  return { cores, source: 'cores' };
}
