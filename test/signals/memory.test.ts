import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isConfigError } from '../../src/errors.js';
import { heapMemory, memory, rssMemory } from '../../src/signals/memory.js';

describe('heapMemory', () => {
  it('reports heap used / heap limit, a ratio', () => {
    const stats = { used_heap_size: 400, heap_size_limit: 1000 };
    const s = heapMemory({ read: () => stats });
    expect([s.name, s.unit, s.target, s.limit, s.onFailure]).toEqual([
      'heap-memory',
      'ratio',
      0.8,
      0.95,
      'ignore',
    ]);
    expect(s.sample(0)).toBe(0.4);
    stats.used_heap_size = 900;
    expect(s.sample(0)).toBe(0.9);
  });

  it('reads the real V8 heap by default', () => {
    const v = heapMemory().sample(0);
    expect(v).toBeGreaterThan(0);
    expect(v).toBeLessThan(1);
  });
});

describe('rssMemory', () => {
  it('reports RSS / limitBytes', () => {
    let rss = 256;
    const s = rssMemory({ read: () => rss, limitBytes: 1024 });
    expect([s.name, s.unit]).toEqual(['rss-memory', 'ratio']);
    expect(s.sample(0)).toBe(0.25);
    rss = 1024;
    expect(s.sample(0)).toBe(1);
  });

  it('uses the cgroup memory limit when there is one, and total memory otherwise', () => {
    const root = mkdtempSync(join(tmpdir(), 'spillway-mem-'));
    try {
      writeFileSync(join(root, 'cgroup.controllers'), '');
      writeFileSync(join(root, 'memory.max'), '1000000\n');
      const s = rssMemory({ read: () => 500_000, cgroupRoot: root });
      s.start!();
      expect(s.sample(0)).toBe(0.5);
      writeFileSync(join(root, 'memory.max'), 'max\n');
      const u = rssMemory({ read: () => 1_000_000, cgroupRoot: root });
      expect(u.sample(0)).toBe(1_000_000 / totalmem());
      // Unreadable or absent cgroup files fall back to total memory.
      const none = rssMemory({ read: () => 1_000_000, cgroupRoot: join(root, 'absent') });
      expect(none.sample(0)).toBe(1_000_000 / totalmem());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('reads the real RSS by default', () => {
    const v = rssMemory().sample(0);
    expect(v).toBeGreaterThan(0);
    expect(v).toBeLessThan(1);
  });
});

describe('memory', () => {
  it('routes by kind', () => {
    expect(memory().name).toBe('heap-memory');
    expect(memory({ kind: 'rss', limitBytes: 10, target: 0.5, limit: 0.6 }).name).toBe('rss-memory');
    expect(memory({ kind: 'rss', limitBytes: 10, target: 0.5, limit: 0.6 }).target).toBe(0.5);
  });

  it('rejects invalid options', () => {
    const bad: Array<[() => unknown, string]> = [
      [() => memory({ kind: 'stack' as 'heap' }), 'kind'],
      [() => memory({ kind: 'heap', limitBytes: 5 }), 'limitBytes'],
      [() => heapMemory({ target: 0.95, limit: 0.9 }), 'limit'],
      [() => heapMemory({ limit: 1.5 }), 'limit'],
      [() => rssMemory({ limitBytes: 0 }), 'limitBytes'],
      [() => rssMemory({ read: 'rss' as never }), 'read'],
      [() => rssMemory({ max: 1 } as never), 'rssMemory.max'],
    ];
    for (const [make, option] of bad) {
      try {
        make();
        expect.fail(`accepted (${option})`);
      } catch (e) {
        expect(isConfigError(e)).toBe(true);
        expect((e as { option: string }).option).toBe(option);
      }
    }
  });
});
