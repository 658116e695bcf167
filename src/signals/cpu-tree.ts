/**
 * CPU of a whole process tree (the process, its cluster workers and child processes), with
 * `pidtree` (lists descendants; on Linux and macOS it spawns `ps`) and `pidusage` (reads
 * `/proc/<pid>/stat` on Linux, spawns `ps` elsewhere). It spawns processes, so it runs in the
 * background on its own interval and only when asked for (`cpu({ tree: true })`).
 *
 * Per process, CPU in cores = Δ(user+system CPU time) / Δ(wall time) between two calls. A process
 * seen for the first time has no previous reading: its lifetime average (CPU time / age) stands in,
 * which is exact for a child that has been busy since it started. A pid whose CPU time went down
 * was reused by a new process and counts as new.
 */
import { cpuCapacity } from './cpu-capacity.js';

/** A tree's CPU over the interval since the previous call for the same root. */
export interface TreeCpuSample {
  /** CPU of the tree, as a ratio of the CPU this process may use (`capacityCores`); normally 0–1. */
  cpuRatio: number;
  /** Processes in the tree, the root included. */
  processes: number;
  /** CPU of the tree, in cores (1.5 = one and a half cores busy). */
  cpuCores: number;
  /** CPU of the root process alone, in cores. */
  rootCpuCores: number;
  /** The CPU the tree may use, in cores: min(available cores, cgroup quota). */
  capacityCores: number;
}

/** Per-pid CPU time and age, in ms, as pidusage reports them (`ctime`, `elapsed`). */
export interface ProcessCpuTime {
  ctime: number;
  elapsed: number;
}

export interface TreeCpuSamplerOptions {
  /** The CPU the tree may use, in cores. @default min(os.availableParallelism(), cgroup quota) */
  capacityCores?: number;
  /** Lists the root and its descendants. @default pidtree(pid, { root: true }) */
  listPids?: (pid: number) => Promise<number[]>;
  /** CPU time and age per pid; pids that vanished are left out. @default pidusage(pids) */
  readCpuTimes?: (pids: number[]) => Promise<Map<number, ProcessCpuTime>>;
  /** Wall clock in ms for the deltas. @default performance.now() */
  now?: () => number;
}

async function defaultListPids(pid: number): Promise<number[]> {
  const { default: pidtree } = await import('pidtree');
  return pidtree(pid, { root: true });
}

async function defaultReadCpuTimes(pids: number[]): Promise<Map<number, ProcessCpuTime>> {
  const { default: pidusage } = await import('pidusage');
  const stats = await pidusage(pids);
  const out = new Map<number, ProcessCpuTime>();
  for (const pid of pids) {
    // pidusage gives null or undefined for a pid that exited between listing and reading
    // (such as the `ps` that pidtree spawned).
    const s = stats[String(pid)] as (typeof stats)[string] | null | undefined;
    if (s != null && Number.isFinite(s.ctime) && Number.isFinite(s.elapsed)) {
      out.set(pid, { ctime: s.ctime, elapsed: s.elapsed });
    }
  }
  return out;
}

/**
 * Creates a sampler with its own history (one per root you watch). Each call returns the tree's
 * CPU since the previous call. Rejects when the tree cannot be listed or the root cannot be read.
 */
export function createTreeCpuSampler(
  options: TreeCpuSamplerOptions = {},
): (pid: number) => Promise<TreeCpuSample> {
  const listPids = options.listPids ?? defaultListPids;
  const readCpuTimes = options.readCpuTimes ?? defaultReadCpuTimes;
  const now = options.now ?? (() => performance.now());
  let capacityCores = options.capacityCores;
  let history = new Map<number, { ctime: number; atMs: number }>();

  return async (pid: number): Promise<TreeCpuSample> => {
    capacityCores ??= cpuCapacity().cores;
    const pids = await listPids(pid);
    if (!pids.includes(pid)) pids.unshift(pid);
    const times = await readCpuTimes(pids);
    const atMs = now();
    if (!times.has(pid)) throw new Error(`Cannot read the CPU time of process ${pid}`);
    const next = new Map<number, { ctime: number; atMs: number }>();
    let cpuCores = 0;
    let rootCpuCores = 0;
    for (const [p, t] of times) {
      const prev = history.get(p);
      let cores: number;
      if (prev !== undefined && t.ctime >= prev.ctime && atMs > prev.atMs && t.elapsed >= atMs - prev.atMs) {
        cores = (t.ctime - prev.ctime) / (atMs - prev.atMs);
      } else {
        cores = t.elapsed > 0 ? t.ctime / t.elapsed : 0;
      }
      cores = Math.max(0, cores);
      next.set(p, { ctime: t.ctime, atMs });
      cpuCores += cores;
      if (p === pid) rootCpuCores = cores;
    }
    // Only the pids seen now are kept: exited processes do not accumulate.
    history = next;
    return {
      cpuRatio: cpuCores / capacityCores,
      processes: times.size,
      cpuCores,
      rootCpuCores,
      capacityCores,
    };
  };
}

const shared = new Map<number, (pid: number) => Promise<TreeCpuSample>>();

/**
 * The CPU of `pid` and all its descendants since the previous call for that pid (the first call
 * reports each process's lifetime average), as a ratio of the CPU this process may use. For a
 * cluster primary: `(await sampleTreeCpu(process.pid)).cpuRatio` covers every worker.
 * Spawns `ps`: call it every second or two, not per request.
 */
export function sampleTreeCpu(pid: number = process.pid): Promise<TreeCpuSample> {
  let sampler = shared.get(pid);
  if (sampler === undefined) {
    sampler = createTreeCpuSampler();
    shared.set(pid, sampler);
  }
  return sampler(pid);
}
