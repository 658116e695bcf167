/**
 * Memory, as ratios (never bytes):
 * - heap: V8 heap in use / the heap's hard limit (`v8.getHeapStatistics()`: `used_heap_size /
 *   heap_size_limit`). Near 1, V8 spends its time in full collections and then aborts the process.
 * - rss: resident set size / the memory the process may use: the container's cgroup limit
 *   (v2 `memory.max`, v1 `memory.limit_in_bytes`) or, without one, `os.totalmem()`. Crossing the
 *   cgroup limit gets the process OOM-killed.
 */
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { ConfigError } from '../errors.js';
import { fn, knownKeys, oneOf, positiveNumber } from '../validate.js';
import { readCgroupMemoryLimit } from './cgroup.js';
import { failureMode, optionsObject, targetAndLimit } from './common.js';
import type { Signal, SignalFailureMode } from './types.js';

export interface HeapMemoryOptions {
  /** Heap used / heap limit where pressure starts, from 0 to 1. @default 0.8 */
  target?: number;
  /** Heap used / heap limit where pressure reaches 1, from 0 to 1, greater than `target`. @default 0.95 */
  limit?: number;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
  /** Heap statistics in bytes (tests inject). @default v8.getHeapStatistics */
  read?: () => { used_heap_size: number; heap_size_limit: number };
}

export interface RssMemoryOptions {
  /** RSS / memory limit where pressure starts, from 0 to 1. @default 0.8 */
  target?: number;
  /** RSS / memory limit where pressure reaches 1, from 0 to 1, greater than `target`. @default 0.95 */
  limit?: number;
  /** @default 'ignore' */
  onFailure?: SignalFailureMode;
  /**
   * The memory the process may use, in bytes.
   * @default min(cgroup memory limit, os.totalmem()), read at start()
   */
  limitBytes?: number;
  /** Where the cgroup filesystem is mounted. @default '/sys/fs/cgroup' */
  cgroupRoot?: string;
  /** The resident set size in bytes (tests inject). @default process.memoryUsage.rss */
  read?: () => number;
}

/** Options of `heapMemory` and `rssMemory` without their test hooks (use those factories to inject). */
export interface MemoryOptions extends Omit<HeapMemoryOptions, 'read'>, Omit<RssMemoryOptions, 'read'> {
  /** Which memory: the V8 heap or the resident set. @default 'heap' */
  kind?: 'heap' | 'rss';
}

export const MEMORY_DEFAULTS = Object.freeze({ target: 0.8, limit: 0.95 });

/**
 * The memory this process may use, in bytes: the cgroup limit when there is one, never more than
 * the machine's memory. Never throws (an unreadable cgroup falls back to `os.totalmem()`).
 */
export function memoryLimitBytes(options: { cgroupRoot?: string; totalBytes?: number } = {}): {
  bytes: number;
  source: string;
} {
  const total = options.totalBytes ?? totalmem();
  const cg = readCgroupMemoryLimit(options.cgroupRoot === undefined ? {} : { root: options.cgroupRoot });
  if (cg.value !== undefined && cg.value < total) return { bytes: cg.value, source: cg.source };
  return { bytes: total, source: 'totalmem' };
}

const HEAP_OPTIONS = ['target', 'limit', 'onFailure', 'read'] as const;

/** V8 heap used / V8 heap limit, a ratio from 0 to 1. Unit `ratio`. */
export function heapMemory(options?: HeapMemoryOptions): Signal {
  const o = optionsObject('heapMemory', options);
  knownKeys('heapMemory', o, HEAP_OPTIONS);
  const { target, limit } = ratios(o);
  const read =
    o.read === undefined ? getHeapStatistics : fn<NonNullable<HeapMemoryOptions['read']>>('read', o.read);
  return {
    name: 'heap-memory',
    unit: 'ratio',
    target,
    limit,
    onFailure: failureMode('onFailure', o.onFailure, 'ignore'),
    sample(): number {
      const s = read();
      return s.used_heap_size / s.heap_size_limit;
    },
  };
}

const RSS_OPTIONS = ['target', 'limit', 'onFailure', 'limitBytes', 'cgroupRoot', 'read'] as const;

/** Resident set size / the memory the process may use, a ratio (normally 0 to 1). Unit `ratio`. */
export function rssMemory(options?: RssMemoryOptions): Signal {
  const o = optionsObject('rssMemory', options);
  knownKeys('rssMemory', o, RSS_OPTIONS);
  const { target, limit } = ratios(o);
  const fixed = o.limitBytes === undefined ? undefined : positiveNumber('limitBytes', o.limitBytes);
  const read = o.read === undefined ? process.memoryUsage.rss : fn<() => number>('read', o.read);
  let limitBytes: number | undefined;
  const signal: Signal = {
    name: 'rss-memory',
    unit: 'ratio',
    target,
    limit,
    onFailure: failureMode('onFailure', o.onFailure, 'ignore'),
    start() {
      // The limit is read once: cgroup files are cheap but not free, and limits rarely change.
      limitBytes ??=
        fixed ?? memoryLimitBytes(o.cgroupRoot === undefined ? {} : { cgroupRoot: o.cgroupRoot }).bytes;
    },
    sample(): number {
      if (limitBytes === undefined) signal.start!();
      return read() / limitBytes!;
    },
  };
  return signal;
}

const MEMORY_OPTIONS = ['kind', 'target', 'limit', 'onFailure', 'limitBytes', 'cgroupRoot'] as const;

/** `heapMemory` or `rssMemory`, by `kind`. */
export function memory(options?: MemoryOptions): Signal {
  const o = optionsObject('memory', options);
  knownKeys('memory', o, MEMORY_OPTIONS);
  const { kind = 'heap', ...rest } = o;
  if (oneOf('kind', kind, ['heap', 'rss']) === 'heap') {
    for (const key of ['limitBytes', 'cgroupRoot'] as const) {
      if (rest[key] !== undefined) throw new ConfigError(key, rest[key], "undefined with kind 'heap'");
    }
    const { limitBytes: _l, cgroupRoot: _c, ...heap } = rest;
    return heapMemory(heap);
  }
  return rssMemory(rest);
}

function ratios(o: { target?: number; limit?: number }): { target: number; limit: number } {
  return targetAndLimit(
    'target',
    o.target ?? MEMORY_DEFAULTS.target,
    'limit',
    o.limit ?? MEMORY_DEFAULTS.limit,
    0,
    1,
  );
}
