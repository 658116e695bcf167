/**
 * Container limits from Linux control groups: pure parsers for each file format, and readers that
 * take the cgroup mount point as a parameter so they can be tested on a temporary directory.
 *
 * The readers never throw: a file that is missing, unreadable or malformed counts as "no limit
 * there", and the callers fall back to the machine's cores or total memory.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Values at or above 2^62 mean "unlimited": cgroup v1 writes `9223372036854771712` (LLONG_MAX
 * rounded down to a page) when no memory limit is set, and nothing real is that large.
 */
export const UNLIMITED_BYTES = 2 ** 62;

/**
 * Parses cgroup v2 `cpu.max` ("$MAX $PERIOD", e.g. `max 100000` or `200000 100000`).
 * @returns the quota in cores (200000/100000 → 2), or `undefined` when unlimited (`max`).
 * @throws Error when the text is not in that format.
 */
export function parseCgroupV2CpuMax(text: string): number | undefined {
  const parts = text.trim().split(/\s+/);
  const [quota, period = '100000'] = parts;
  if (parts.length > 2 || quota === undefined || quota === '') throw malformed('cpu.max', text);
  const periodUs = parseCount(period);
  if (periodUs === undefined || periodUs <= 0) throw malformed('cpu.max', text);
  if (quota === 'max') return undefined;
  const quotaUs = parseCount(quota);
  if (quotaUs === undefined || quotaUs <= 0) throw malformed('cpu.max', text);
  return quotaUs / periodUs;
}

/**
 * Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
 * @returns the quota in cores, or `undefined` when unlimited (quota `-1`).
 * @throws Error when either text is not an integer, or the period is not positive.
 */
export function parseCgroupV1CpuQuota(quotaText: string, periodText: string): number | undefined {
  const quota = quotaText.trim();
  const periodUs = parseCount(periodText.trim());
  if (periodUs === undefined || periodUs <= 0) throw malformed('cpu.cfs_period_us', periodText);
  if (quota === '-1') return undefined;
  const quotaUs = parseCount(quota);
  if (quotaUs === undefined || quotaUs <= 0) throw malformed('cpu.cfs_quota_us', quotaText);
  return quotaUs / periodUs;
}

/**
 * Parses cgroup v2 `memory.max` (`max` or a byte count).
 * @returns the limit in bytes, or `undefined` when unlimited (`max` or >= 2^62).
 * @throws Error when the text is neither.
 */
export function parseCgroupV2MemoryMax(text: string): number | undefined {
  const t = text.trim();
  if (t === 'max') return undefined;
  return bytesOrUnlimited('memory.max', t);
}

/**
 * Parses cgroup v1 `memory.limit_in_bytes` (a byte count; `9223372036854771712` when unset).
 * @returns the limit in bytes, or `undefined` when unlimited (>= 2^62, or `-1`).
 * @throws Error when the text is not an integer.
 */
export function parseCgroupV1MemoryLimit(text: string): number | undefined {
  const t = text.trim();
  if (t === '-1') return undefined;
  return bytesOrUnlimited('memory.limit_in_bytes', t);
}

/** The cgroup paths of one process, from `/proc/<pid>/cgroup`. */
export interface ProcCgroups {
  /** The cgroup v2 path (the `0::/path` line), when present. */
  v2?: string;
  /** cgroup v1 paths by controller name (`cpu`, `memory`, ...). */
  v1: Record<string, string>;
}

/**
 * Parses `/proc/self/cgroup`: lines of `hierarchy-id:controller,list:/path`. Malformed lines are
 * skipped (the format is the kernel's and stable; a stray line must not lose the others).
 */
export function parseProcCgroup(text: string): ProcCgroups {
  const result: ProcCgroups = { v1: {} };
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1).trim();
    if (!path.startsWith('/')) continue;
    if (id === '0' && controllers === '') {
      result.v2 = path;
      continue;
    }
    for (const c of controllers.split(',')) if (c !== '') result.v1[c] = path;
  }
  return result;
}

/** Where a limit came from, for records and docs: the file path, or `none`. */
export interface CgroupLimit {
  /** Cores for CPU, bytes for memory; `undefined` when no limit was found. */
  value: number | undefined;
  /** The file that set the (smallest) limit, or `'none'`. */
  source: string;
}

export interface CgroupReadOptions {
  /** Where the cgroup filesystem is mounted. @default '/sys/fs/cgroup' */
  root?: string;
  /**
   * The process's own cgroup file, used to find its cgroup below the mount point (outside a
   * cgroup namespace the container's cgroup is a subdirectory). @default '/proc/self/cgroup'
   */
  procCgroupFile?: string;
}

/**
 * The CPU quota of this process's cgroup in cores: the smallest quota on the way from its own
 * cgroup up to the mount point (a parent's quota bounds its children), v2 first, then v1.
 */
export function readCgroupCpuLimit(options: CgroupReadOptions = {}): CgroupLimit {
  const { root, own } = locate(options);
  const v2 = walkUp(root, own.v2 ?? '/', (dir) => {
    const file = join(dir, 'cpu.max');
    return [file, parseCgroupV2CpuMax(readFileSync(file, 'utf8'))];
  });
  if (v2.value !== undefined || isV2(root)) return v2;
  for (const mount of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) {
    const base = join(root, mount);
    const found = walkUp(base, own.v1['cpu'] ?? '/', (dir) => {
      const file = join(dir, 'cpu.cfs_quota_us');
      const quota = readFileSync(file, 'utf8');
      const period = readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8');
      return [file, parseCgroupV1CpuQuota(quota, period)];
    });
    if (found.value !== undefined) return found;
  }
  return { value: undefined, source: 'none' };
}

/**
 * The memory limit of this process's cgroup in bytes: the smallest on the way from its own cgroup
 * up to the mount point, v2 (`memory.max`) first, then v1 (`memory.limit_in_bytes`).
 */
export function readCgroupMemoryLimit(options: CgroupReadOptions = {}): CgroupLimit {
  const { root, own } = locate(options);
  const v2 = walkUp(root, own.v2 ?? '/', (dir) => {
    const file = join(dir, 'memory.max');
    return [file, parseCgroupV2MemoryMax(readFileSync(file, 'utf8'))];
  });
  if (v2.value !== undefined || isV2(root)) return v2;
  return walkUp(join(root, 'memory'), own.v1['memory'] ?? '/', (dir) => {
    const file = join(dir, 'memory.limit_in_bytes');
    return [file, parseCgroupV1MemoryLimit(readFileSync(file, 'utf8'))];
  });
}

function locate(options: CgroupReadOptions): { root: string; own: ProcCgroups } {
  const root = options.root ?? '/sys/fs/cgroup';
  let own: ProcCgroups = { v1: {} };
  try {
    own = parseProcCgroup(readFileSync(options.procCgroupFile ?? '/proc/self/cgroup', 'utf8'));
  } catch {
    // Not Linux, or /proc not mounted: only the mount point itself is consulted.
  }
  return { root, own };
}

function isV2(root: string): boolean {
  try {
    readFileSync(join(root, 'cgroup.controllers'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a limit in `base + path` and every ancestor up to `base`, keeping the smallest. Inside a
 * cgroup namespace the process's path is `/` and only `base` is read; outside one, the path names
 * its cgroup below the mount. Unreadable or malformed files are skipped.
 */
function walkUp(
  base: string,
  path: string,
  read: (dir: string) => [string, number | undefined],
): CgroupLimit {
  const segments = path.split('/').filter((s) => s !== '' && s !== '.' && s !== '..');
  let best: CgroupLimit = { value: undefined, source: 'none' };
  for (let n = segments.length; n >= 0; n--) {
    const dir = join(base, ...segments.slice(0, n));
    try {
      const [file, value] = read(dir);
      if (value !== undefined && (best.value === undefined || value < best.value)) {
        best = { value, source: file };
      }
    } catch {
      // Missing here (not every level has the file): keep walking up.
    }
  }
  return best;
}

function parseCount(text: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function bytesOrUnlimited(file: string, text: string): number | undefined {
  const n = parseCount(text);
  // 0 bytes cannot be the limit of a running process: read as a malformed file, not a limit.
  if (n === undefined || n === 0) throw malformed(file, text);
  return n >= UNLIMITED_BYTES ? undefined : n;
}

function malformed(file: string, text: string): Error {
  return new Error(`Malformed cgroup ${file}: ${JSON.stringify(text.slice(0, 80))}`);
}
