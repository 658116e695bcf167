import { describe, expect, it } from 'vitest';
import { isConfigError } from '../../src/errors.js';
import { custom } from '../../src/signals/custom.js';
import { defaultSignals, signals } from '../../src/signals/index.js';
import { queueDepth } from '../../src/signals/queue-depth.js';

describe('queueDepth', () => {
  it('reports what read() returns, as a count', () => {
    let waiting = 3;
    const s = queueDepth('pg-waiting', () => waiting, { target: 5, limit: 50 });
    expect([s.name, s.unit, s.target, s.limit, s.onFailure]).toEqual([
      'pg-waiting',
      'count',
      5,
      50,
      'ignore',
    ]);
    expect(s.sample(0)).toBe(3);
    waiting = 70;
    expect(s.sample(0)).toBe(70);
    expect(queueDepth('q', () => 0, { limit: 10 }).target).toBe(0);
  });

  it('fails (throws) on a throwing reader or a reading that is not a count, per onFailure', () => {
    const boom = queueDepth(
      'pool',
      () => {
        throw new Error('pool closed');
      },
      { limit: 10, onFailure: 'overloaded' },
    );
    expect(boom.onFailure).toBe('overloaded');
    expect(() => boom.sample(0)).toThrow('pool closed');
    for (const v of [Number.NaN, -1, Number.POSITIVE_INFINITY, '3', undefined]) {
      const s = queueDepth('q', () => v as number, { limit: 10 });
      expect(() => s.sample(0)).toThrow(/read\(\) returned .*expected a finite number >= 0/);
    }
  });

  it('rejects invalid arguments', () => {
    const bad: Array<[() => unknown, string]> = [
      [() => queueDepth('', () => 1, { limit: 1 }), 'name'],
      [() => queueDepth('has space', () => 1, { limit: 1 }), 'name'],
      [() => queueDepth('q', 1 as never, { limit: 1 }), 'read'],
      [() => queueDepth('q', () => 1, {} as never), 'limit'],
      [() => queueDepth('q', () => 1, { target: 10, limit: 10 }), 'limit'],
      [() => queueDepth('q', () => 1, { target: -1, limit: 10 }), 'target'],
      [() => queueDepth('q', () => 1, { limit: 10, onFailure: 'closed' as 'ignore' }), 'onFailure'],
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

describe('custom', () => {
  it('builds a validated Signal from a sample function, passing start/stop through', () => {
    const seen: number[] = [];
    let running = false;
    const s = custom({
      name: 'redis-latency',
      unit: 'ms',
      target: 5,
      limit: 50,
      sample: (now) => {
        seen.push(now);
        return 12;
      },
      start: () => {
        running = true;
      },
      stop: () => {
        running = false;
      },
    });
    expect([s.name, s.unit, s.target, s.limit, s.onFailure]).toEqual([
      'redis-latency',
      'ms',
      5,
      50,
      'ignore',
    ]);
    s.start!();
    expect(running).toBe(true);
    expect(s.sample(123)).toBe(12);
    expect(seen).toEqual([123]);
    s.stop!();
    expect(running).toBe(false);
    expect(custom({ name: 'x', target: 0, limit: 1, sample: () => 0 }).start).toBeUndefined();
    expect(() => custom({ name: 'x', target: 1, limit: 1, sample: () => 0 })).toThrow(/`limit`/);
    expect(() => custom({ name: '', target: 0, limit: 1, sample: () => 0 })).toThrow(/`name`/);
  });
});

describe('signals namespace and defaultSignals', () => {
  it('exposes every factory', () => {
    expect(Object.keys(signals).sort()).toEqual(
      [
        'cpu',
        'custom',
        'eventLoopDelay',
        'eventLoopUtilization',
        'heapMemory',
        'memory',
        'queueDepth',
        'queueTime',
        'refusalShare',
        'rssMemory',
      ].sort(),
    );
    expect(Object.isFrozen(signals)).toBe(true);
  });

  it('returns the recommended set, fresh on each call, and none of them spawns', () => {
    const set = defaultSignals();
    expect(set.map((s) => [s.name, s.target, s.limit])).toEqual([
      ['event-loop-delay', 20, 200],
      ['heap-memory', 0.8, 0.95],
      ['rss-memory', 0.8, 0.95],
    ]);
    expect(defaultSignals()[0]).not.toBe(set[0]);
    for (const s of set) {
      s.start?.();
      const v = s.sample(performance.now() + 1);
      expect(Number.isFinite(v) && v >= 0, s.name).toBe(true);
      s.stop?.();
    }
  });
});
