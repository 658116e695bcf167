/**
 * CPU: the CPU time the process used per sampling interval, as a ratio of the CPU it may use
 * (its available cores, bounded by the container's cgroup quota).
 *
 *   value = Δ(user + system CPU time) / Δ(clock time) / capacityCores
 *
 * `process.cpuUsage(previous)` is one `getrusage` syscall (about 0.7 µs here). It counts every
 * thread of the process: the main loop, the GC and libuv threads, worker_threads.
 *
 * With `tree: true` it adds the CPU of the process's descendants (cluster workers, child
 * processes), sampled in the background every `treeIntervalMs` (that spawns `ps`): the reading is
 * then the fresh own-process value plus the latest value of the other processes in the tree.
 */
type CpuUsage = NodeJS.CpuUsage;
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { boolean, clockOption, finiteNumber, fn, integer, knownKeys, positiveNumber } from '../validate.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import { cpuCapacity } from './cpu-capacity.js';
import { createTreeCpuSampler, type TreeCpuSample } from './cpu-tree.js';
import type { Signal, SignalFailureMode } from './types.js';

export interface CpuOptions {
  /** CPU where pressure starts, as a ratio of the CPU the process may use (from 0). @default 0.75 */
  target?: number;
  /** CPU where pressure reaches 1, a ratio greater than `target`. @default 0.95 */
  limit?: number;
  /** The clock that times the intervals and the tree timer; pass the governor's. @default systemClock */
  clock?: Clock;
  /** Add the CPU of all descendant processes (spawns `ps` every `treeIntervalMs`). @default false */
  tree?: boolean;
  /** How often the tree is sampled in the background, in ms (>= 100). @default 2000 */
  treeIntervalMs?: number;
  /**
   * How long the last tree reading stays in use while tree sampling fails, in ms; after that
   * `sample()` throws and the governor applies `onFailure`. @default 3 × treeIntervalMs
   */
  treeMaxAgeMs?: number;
  /** The root of the tree. @default process.pid */
  pid?: number;
  /** The CPU the process may use, in cores. @default min(os.availableParallelism(), cgroup quota) */
  capacityCores?: number;
  /** Where the cgroup filesystem is mounted. @default '/sys/fs/cgroup' */
  cgroupRoot?: string;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
  /** The process's CPU usage in µs (tests inject). @default process.cpuUsage */
  readUsage?: (previous?: CpuUsage) => CpuUsage;
  /** Samples the tree (tests inject). @default createTreeCpuSampler() */
  sampleTree?: (pid: number) => Promise<TreeCpuSample>;
}

export const CPU_DEFAULTS = Object.freeze({ target: 0.75, limit: 0.95, tree: false, treeIntervalMs: 2000 });

const OPTIONS = [
  'target',
  'limit',
  'clock',
  'tree',
  'treeIntervalMs',
  'treeMaxAgeMs',
  'pid',
  'capacityCores',
  'cgroupRoot',
  'onFailure',
  'readUsage',
  'sampleTree',
] as const;

/** Process (or process-tree) CPU per interval, a ratio of the CPU it may use. Unit `ratio`. */
export function cpu(options?: CpuOptions): Signal {
  const o = optionsObject('cpu', options);
  knownKeys('cpu', o, OPTIONS);
  const d = CPU_DEFAULTS;
  const { target, limit } = targetAndLimit('target', o.target ?? d.target, 'limit', o.limit ?? d.limit, 0);
  const clock = clockOption('clock', o.clock, systemClock);
  const tree = boolean('tree', o.tree ?? d.tree);
  const treeIntervalMs = finiteNumber('treeIntervalMs', o.treeIntervalMs ?? d.treeIntervalMs, 100);
  const treeMaxAgeMs =
    o.treeMaxAgeMs === undefined ? 3 * treeIntervalMs : positiveNumber('treeMaxAgeMs', o.treeMaxAgeMs);
  const pid = integer('pid', o.pid ?? process.pid, 1);
  const fixedCapacity =
    o.capacityCores === undefined ? undefined : positiveNumber('capacityCores', o.capacityCores);
  const cgroupRoot = o.cgroupRoot;
  const onFailure = failureMode('onFailure', o.onFailure, 'ignore');
  const readUsage =
    o.readUsage === undefined ? process.cpuUsage : fn<typeof process.cpuUsage>('readUsage', o.readUsage);
  const injectedTree =
    o.sampleTree === undefined
      ? undefined
      : fn<(pid: number) => Promise<TreeCpuSample>>('sampleTree', o.sampleTree);

  let started = false;
  let capacity = 1;
  let lastUsage: CpuUsage | undefined;
  let lastMs = 0;
  let lastValue = 0;
  // Tree state: the other processes' CPU in cores from the latest successful tree sample.
  let sampleTree: ((pid: number) => Promise<TreeCpuSample>) | undefined;
  let timer: TimerHandle | undefined;
  let generation = 0;
  let othersCores = 0;
  let treeOkAtMs = 0;
  let treeError: unknown;

  const runTree = (gen: number): void => {
    timer = undefined;
    sampleTree!(pid)
      .then(
        (s) => {
          if (gen !== generation) return;
          othersCores = Math.max(0, s.cpuCores - s.rootCpuCores);
          treeOkAtMs = clock.now();
          treeError = undefined;
        },
        (err: unknown) => {
          if (gen !== generation) return;
          treeError = err;
        },
      )
      .finally(() => {
        if (gen === generation) timer = clock.setTimeout(() => runTree(gen), treeIntervalMs);
      });
  };

  const signal: Signal = {
    name: tree ? 'cpu-tree' : 'cpu',
    unit: 'ratio',
    target,
    limit,
    onFailure,
    start() {
      if (started) return;
      started = true;
      capacity = fixedCapacity ?? cpuCapacity(cgroupRoot === undefined ? {} : { root: cgroupRoot }).cores;
      lastUsage = readUsage();
      lastMs = clock.now();
      lastValue = 0;
      if (tree) {
        sampleTree = injectedTree ?? createTreeCpuSampler({ capacityCores: capacity });
        othersCores = 0;
        treeError = undefined;
        treeOkAtMs = lastMs;
        const gen = ++generation;
        timer = clock.setTimeout(() => runTree(gen), 0);
      }
    },
    stop() {
      if (!started) return;
      started = false;
      generation++;
      timer?.cancel();
      timer = undefined;
    },
    sample(nowMs: number): number {
      if (!started) signal.start!();
      if (tree && treeError !== undefined && nowMs - treeOkAtMs > treeMaxAgeMs) {
        throw new Error(
          `cpu: process-tree sampling has failed for ${Math.round(nowMs - treeOkAtMs)} ms: ${String(
            (treeError as Error)?.message ?? treeError,
          )}`,
          { cause: treeError },
        );
      }
      const elapsed = nowMs - lastMs;
      if (!(elapsed > 0)) return lastValue;
      const now = readUsage();
      const usedMs = (now.user - lastUsage!.user + now.system - lastUsage!.system) / 1000;
      lastUsage = now;
      lastMs = nowMs;
      lastValue = Math.max(0, usedMs / elapsed + othersCores) / capacity;
      return lastValue;
    },
  };
  return signal;
}
