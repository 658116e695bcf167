import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { cpu } from '../../src/signals/cpu.js';
import { createTreeCpuSampler, type ProcessCpuTime, type TreeCpuSample } from '../../src/signals/cpu-tree.js';

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function fakeUsage() {
  const usage = { user: 0, system: 0 };
  return { usage, readUsage: () => ({ ...usage }) };
}

describe('cpu', () => {
  it('has the documented defaults', () => {
    const s = cpu({ capacityCores: 1 });
    expect([s.name, s.unit, s.target, s.limit, s.onFailure]).toEqual(['cpu', 'ratio', 0.75, 0.95, 'ignore']);
    expect(cpu({ tree: true }).name).toBe('cpu-tree');
  });

  it('reports process CPU per interval over clock time, divided by the capacity', () => {
    const clock = new ManualClock();
    const { usage, readUsage } = fakeUsage();
    usage.user = 5_000_000; // 5 s of CPU before start: not counted
    const s = cpu({ clock, readUsage, capacityCores: 2 });
    s.start!();
    clock.advance(100);
    usage.user += 60_000; // 60 ms user
    usage.system += 40_000; // 40 ms system
    expect(s.sample(clock.now())).toBeCloseTo(0.5, 12); // 100 ms of CPU in 100 ms over 2 cores
    clock.advance(200);
    usage.user += 300_000; // 300 ms in 200 ms: 1.5 cores
    expect(s.sample(clock.now())).toBeCloseTo(0.75, 12);
    expect(s.sample(clock.now())).toBeCloseTo(0.75, 12); // no time passed: same reading
  });

  it('uses the cgroup quota as capacity', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const root = mkdtempSync(join(tmpdir(), 'spillway-cpu-'));
    try {
      writeFileSync(join(root, 'cgroup.controllers'), '');
      writeFileSync(join(root, 'cpu.max'), '50000 100000\n');
      const clock = new ManualClock();
      const { usage, readUsage } = fakeUsage();
      const s = cpu({ clock, readUsage, cgroupRoot: root });
      s.start!();
      clock.advance(100);
      usage.user += 40_000;
      expect(s.sample(clock.now())).toBeCloseTo(0.8, 12); // 0.4 cores of a 0.5-core quota
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('adds the other processes of the tree, sampled in the background on the clock', async () => {
    const clock = new ManualClock();
    const { usage, readUsage } = fakeUsage();
    const calls: number[] = [];
    const sampleTree = async (pid: number): Promise<TreeCpuSample> => {
      expect(pid).toBe(42);
      calls.push(clock.now());
      return { cpuRatio: 0.75, processes: 3, cpuCores: 1.5, rootCpuCores: 0.5, capacityCores: 2 };
    };
    const s = cpu({
      clock,
      readUsage,
      capacityCores: 2,
      tree: true,
      treeIntervalMs: 1000,
      sampleTree,
      pid: 42,
    });
    s.start!();
    clock.advance(100);
    usage.user += 20_000; // own: 0.2 cores
    // The tree sample started at t=0 has not resolved yet: own CPU only.
    expect(s.sample(clock.now())).toBeCloseTo(0.1, 12);
    await flush(); // it resolves now (t=100); the next one is due treeIntervalMs after that
    clock.advance(100);
    usage.user += 20_000;
    // own 0.2 cores + others (1.5 − 0.5) cores, over 2 cores
    expect(s.sample(clock.now())).toBeCloseTo(0.6, 12);
    expect(calls).toEqual([0]);
    clock.advance(899); // t=1099
    expect(calls).toEqual([0]);
    clock.advance(1);
    await flush();
    expect(calls).toEqual([0, 1100]);
    s.stop!();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(5000);
    await flush();
    expect(calls).toEqual([0, 1100]);
  });

  it('keeps the last tree value while sampling fails, then reports failure after treeMaxAgeMs', async () => {
    const clock = new ManualClock();
    const { readUsage } = fakeUsage();
    let fail = false;
    const sampleTree = async (): Promise<TreeCpuSample> => {
      if (fail) throw new Error('ps: not found');
      return { cpuRatio: 0.5, processes: 2, cpuCores: 1, rootCpuCores: 0, capacityCores: 2 };
    };
    const s = cpu({ clock, readUsage, capacityCores: 2, tree: true, treeIntervalMs: 1000, sampleTree });
    s.start!();
    clock.advance(0);
    await flush();
    fail = true;
    for (let t = 0; t < 3; t++) {
      clock.advance(1000);
      await flush();
      expect(s.sample(clock.now())).toBeCloseTo(0.5, 12); // last others value kept
    }
    clock.advance(1000);
    await flush();
    expect(() => s.sample(clock.now())).toThrow(
      /process-tree sampling has failed for 4000 ms: ps: not found/,
    );
    fail = false;
    clock.advance(1000);
    await flush();
    expect(s.sample(clock.now())).toBeCloseTo(0.5, 12); // recovered
    s.stop!();
  });

  it('rejects invalid options', () => {
    const bad: Array<[object, string]> = [
      [{ target: 0.9, limit: 0.8 }, 'limit'],
      [{ target: -1 }, 'target'],
      [{ tree: 'yes' }, 'tree'],
      [{ treeIntervalMs: 50 }, 'treeIntervalMs'],
      [{ capacityCores: 0 }, 'capacityCores'],
      [{ pid: 1.5 }, 'pid'],
      [{ readUsage: 1 }, 'readUsage'],
      [{ interval: 1 }, 'cpu.interval'],
    ];
    for (const [options, option] of bad) {
      try {
        cpu(options as never);
        expect.fail(`accepted ${JSON.stringify(options)}`);
      } catch (e) {
        expect(isConfigError(e)).toBe(true);
        expect((e as { option: string }).option).toBe(option);
      }
    }
  });
});

describe('createTreeCpuSampler', () => {
  function fakeTree() {
    let now = 0;
    const procs = new Map<number, ProcessCpuTime>();
    const sampler = createTreeCpuSampler({
      capacityCores: 2,
      now: () => now,
      listPids: async (pid) => [pid, ...[...procs.keys()].filter((p) => p !== pid)],
      readCpuTimes: async (pids) => new Map(pids.filter((p) => procs.has(p)).map((p) => [p, procs.get(p)!])),
    });
    return { sampler, procs, setNow: (t: number) => (now = t) };
  }

  it('uses lifetime averages first, then deltas between calls, summed over the tree', async () => {
    const { sampler, procs, setNow } = fakeTree();
    setNow(10_000);
    procs.set(1, { ctime: 1000, elapsed: 10_000 }); // 0.1 core on average
    procs.set(2, { ctime: 500, elapsed: 500 }); // a child busy since it started
    let s = await sampler(1);
    expect(s.processes).toBe(2);
    expect(s.cpuCores).toBeCloseTo(1.1, 12);
    expect(s.rootCpuCores).toBeCloseTo(0.1, 12);
    expect(s.cpuRatio).toBeCloseTo(0.55, 12);
    setNow(12_000);
    procs.set(1, { ctime: 1400, elapsed: 12_000 }); // 0.2 core
    procs.set(2, { ctime: 2500, elapsed: 2500 }); // 1 core
    s = await sampler(1);
    expect(s.cpuCores).toBeCloseTo(1.2, 12);
    expect(s.rootCpuCores).toBeCloseTo(0.2, 12);
  });

  it('treats a reused pid as a new process and forgets exited ones', async () => {
    const { sampler, procs, setNow } = fakeTree();
    setNow(1000);
    procs.set(1, { ctime: 0, elapsed: 1000 });
    procs.set(7, { ctime: 900, elapsed: 1000 });
    await sampler(1);
    setNow(2000);
    procs.set(7, { ctime: 100, elapsed: 200 }); // a different process now holds pid 7
    let s = await sampler(1);
    expect(s.cpuCores).toBeCloseTo(0.5, 12);
    procs.delete(7);
    setNow(3000);
    s = await sampler(1);
    expect(s.processes).toBe(1);
    expect(s.cpuCores).toBe(0);
  });

  it('rejects when the root cannot be read', async () => {
    const { sampler } = fakeTree();
    await expect(sampler(99)).rejects.toThrow(/Cannot read the CPU time of process 99/);
  });
});
