import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  parseCgroupV1CpuQuota,
  parseCgroupV1MemoryLimit,
  parseCgroupV2CpuMax,
  parseCgroupV2MemoryMax,
  parseProcCgroup,
  readCgroupCpuLimit,
  readCgroupMemoryLimit,
} from '../../src/signals/cgroup.js';
import { cpuCapacity } from '../../src/signals/cpu-capacity.js';
import { memoryLimitBytes } from '../../src/signals/memory.js';

describe('cgroup parsers', () => {
  it('parses v2 cpu.max', () => {
    expect(parseCgroupV2CpuMax('max 100000\n')).toBeUndefined();
    expect(parseCgroupV2CpuMax('200000 100000\n')).toBe(2);
    expect(parseCgroupV2CpuMax('50000 100000')).toBe(0.5);
    expect(parseCgroupV2CpuMax('150000')).toBe(1.5);
    for (const bad of ['', 'abc 100000', '100000 0', '0 100000', '-1 100000', '1 2 3', 'max abc']) {
      expect(() => parseCgroupV2CpuMax(bad), bad).toThrow(/Malformed cgroup cpu.max/);
    }
  });

  it('parses v1 cfs quota and period', () => {
    expect(parseCgroupV1CpuQuota('-1\n', '100000\n')).toBeUndefined();
    expect(parseCgroupV1CpuQuota('300000', '100000')).toBe(3);
    expect(parseCgroupV1CpuQuota('25000\n', '100000\n')).toBe(0.25);
    expect(() => parseCgroupV1CpuQuota('x', '100000')).toThrow(/cfs_quota_us/);
    expect(() => parseCgroupV1CpuQuota('100000', '0')).toThrow(/cfs_period_us/);
    expect(() => parseCgroupV1CpuQuota('-1', '')).toThrow(/cfs_period_us/);
  });

  it('reads any quota/period pair as their ratio', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 1, max: 1_000_000 }), (q, p) => {
        expect(parseCgroupV2CpuMax(`${q} ${p}\n`)).toBe(q / p);
        expect(parseCgroupV1CpuQuota(`${q}\n`, `${p}\n`)).toBe(q / p);
      }),
    );
  });

  it('parses memory limits, with max and absurd values as unlimited', () => {
    expect(parseCgroupV2MemoryMax('max\n')).toBeUndefined();
    expect(parseCgroupV2MemoryMax('536870912\n')).toBe(536870912);
    expect(parseCgroupV1MemoryLimit('9223372036854771712\n')).toBeUndefined();
    expect(parseCgroupV1MemoryLimit('-1')).toBeUndefined();
    expect(parseCgroupV1MemoryLimit('1073741824')).toBe(1073741824);
    expect(parseCgroupV2MemoryMax(String(2 ** 62))).toBeUndefined();
    for (const bad of ['', '12k', '0', '1.5']) {
      expect(() => parseCgroupV2MemoryMax(bad), bad).toThrow(/Malformed/);
      expect(() => parseCgroupV1MemoryLimit(bad), bad).toThrow(/Malformed/);
    }
  });

  it('parses /proc/self/cgroup for v1 controllers and the v2 path', () => {
    const own = parseProcCgroup(
      [
        '12:cpu,cpuacct:/docker/abc',
        '4:memory:/docker/abc',
        '1:name=systemd:/x',
        '0::/kube/pod1',
        'junk',
        '',
      ].join('\n'),
    );
    expect(own.v2).toBe('/kube/pod1');
    expect(own.v1['cpu']).toBe('/docker/abc');
    expect(own.v1['cpuacct']).toBe('/docker/abc');
    expect(own.v1['memory']).toBe('/docker/abc');
    expect(parseProcCgroup('')).toEqual({ v1: {} });
  });
});

describe('cgroup readers on a directory', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function tree(files: Record<string, string>): string {
    const root = mkdtempSync(join(tmpdir(), 'spillway-cgroup-'));
    dirs.push(root);
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  }
  const noProc = (root: string) => ({ root, procCgroupFile: join(root, 'no-such-file') });

  it('reads a v2 quota and memory limit at the mount point (cgroup namespace)', () => {
    const root = tree({
      'cgroup.controllers': 'cpu memory',
      'cpu.max': '150000 100000\n',
      'memory.max': '1048576\n',
    });
    expect(readCgroupCpuLimit(noProc(root))).toEqual({ value: 1.5, source: join(root, 'cpu.max') });
    expect(readCgroupMemoryLimit(noProc(root))).toEqual({ value: 1048576, source: join(root, 'memory.max') });
  });

  it('reports no limit for v2 "max"', () => {
    const root = tree({ 'cgroup.controllers': 'cpu', 'cpu.max': 'max 100000\n', 'memory.max': 'max\n' });
    expect(readCgroupCpuLimit(noProc(root))).toEqual({ value: undefined, source: 'none' });
    expect(readCgroupMemoryLimit(noProc(root))).toEqual({ value: undefined, source: 'none' });
  });

  it("follows the process's own v2 path and keeps the smallest limit of it and its ancestors", () => {
    const root = tree({
      'cgroup.controllers': 'cpu memory',
      'kube/cpu.max': '100000 100000',
      'kube/pod1/cpu.max': '400000 100000',
      'kube/pod1/memory.max': '2000000',
      'kube/memory.max': 'max',
      proc: '0::/kube/pod1\n',
    });
    const opts = { root, procCgroupFile: join(root, 'proc') };
    expect(readCgroupCpuLimit(opts)).toEqual({ value: 1, source: join(root, 'kube/cpu.max') });
    expect(readCgroupMemoryLimit(opts)).toEqual({
      value: 2000000,
      source: join(root, 'kube/pod1/memory.max'),
    });
  });

  it('reads v1 under cpu or cpu,cpuacct, and memory', () => {
    const a = tree({
      'cpu,cpuacct/cpu.cfs_quota_us': '50000\n',
      'cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      'memory/memory.limit_in_bytes': '268435456\n',
    });
    expect(readCgroupCpuLimit(noProc(a)).value).toBe(0.5);
    expect(readCgroupMemoryLimit(noProc(a)).value).toBe(268435456);
    const b = tree({
      'cpu/cpu.cfs_quota_us': '-1',
      'cpu/cpu.cfs_period_us': '100000',
      'cpu/docker/x/cpu.cfs_quota_us': '200000',
      'cpu/docker/x/cpu.cfs_period_us': '100000',
      'memory/memory.limit_in_bytes': '9223372036854771712',
      proc: '5:cpu:/docker/x\n4:memory:/docker/x\n',
    });
    expect(readCgroupCpuLimit({ root: b, procCgroupFile: join(b, 'proc') }).value).toBe(2);
    expect(readCgroupMemoryLimit({ root: b, procCgroupFile: join(b, 'proc') })).toEqual({
      value: undefined,
      source: 'none',
    });
  });

  it('treats missing, malformed and unreadable files as no limit, never throwing', () => {
    const empty = tree({});
    expect(readCgroupCpuLimit(noProc(empty))).toEqual({ value: undefined, source: 'none' });
    expect(readCgroupMemoryLimit(noProc(join(empty, 'absent')))).toEqual({
      value: undefined,
      source: 'none',
    });
    const bad = tree({ 'cgroup.controllers': '', 'cpu.max': 'garbage', 'memory.max': '12 MB' });
    expect(readCgroupCpuLimit(noProc(bad)).value).toBeUndefined();
    expect(readCgroupMemoryLimit(noProc(bad)).value).toBeUndefined();
    const locked = tree({ 'cgroup.controllers': '', 'cpu.max': '100000 100000' });
    chmodSync(join(locked, 'cpu.max'), 0);
    // root reads anything: only assert "no throw" and a sane answer either way.
    expect([undefined, 1]).toContain(readCgroupCpuLimit(noProc(locked)).value);
  });

  it('bounds CPU capacity by the quota and memory by total memory', () => {
    const root = tree({ 'cgroup.controllers': '', 'cpu.max': '50000 100000', 'memory.max': '1000' });
    expect(cpuCapacity({ ...noProc(root), cores: 4 })).toEqual({ cores: 0.5, source: join(root, 'cpu.max') });
    const wide = tree({ 'cgroup.controllers': '', 'cpu.max': '800000 100000', 'memory.max': '5000' });
    expect(cpuCapacity({ ...noProc(wide), cores: 4 })).toEqual({ cores: 4, source: 'cores' });
    expect(cpuCapacity({ ...noProc(tree({})), cores: 3 })).toEqual({ cores: 3, source: 'cores' });
    expect(memoryLimitBytes({ cgroupRoot: root, totalBytes: 4000 })).toEqual({
      bytes: 1000,
      source: join(root, 'memory.max'),
    });
    expect(memoryLimitBytes({ cgroupRoot: wide, totalBytes: 4000 })).toEqual({
      bytes: 4000,
      source: 'totalmem',
    });
  });
});
