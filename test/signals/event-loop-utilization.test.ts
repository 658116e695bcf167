import type { EventLoopUtilization } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { isConfigError } from '../../src/errors.js';
import { type EluReader, eventLoopUtilization } from '../../src/signals/event-loop-utilization.js';

/** Cumulative idle/active ms the test advances; the two-argument form is the delta, like Node's. */
function fakeElu() {
  const state = { idle: 0, active: 0 };
  const read: EluReader = (a?: EventLoopUtilization, b?: EventLoopUtilization) => {
    if (a !== undefined && b !== undefined) {
      const idle = a.idle - b.idle;
      const active = a.active - b.active;
      return { idle, active, utilization: active / (idle + active) };
    }
    return { ...state, utilization: state.active / (state.idle + state.active) };
  };
  return { state, read };
}

describe('eventLoopUtilization', () => {
  it('has the documented defaults', () => {
    const s = eventLoopUtilization();
    expect([s.name, s.unit, s.target, s.limit, s.onFailure]).toEqual([
      'event-loop-utilization',
      'ratio',
      0.85,
      0.98,
      'ignore',
    ]);
  });

  it('reports the utilisation of each interval, not the cumulative one', () => {
    const { state, read } = fakeElu();
    const s = eventLoopUtilization({ read });
    state.idle = 10_000; // a long idle history before start
    s.start!();
    state.active += 90;
    state.idle += 10;
    expect(s.sample(0)).toBeCloseTo(0.9, 12);
    state.active += 20;
    state.idle += 80;
    expect(s.sample(0)).toBeCloseTo(0.2, 12);
    state.active += 100;
    expect(s.sample(0)).toBe(1);
  });

  it('keeps the last reading when no time passed, and is never NaN', () => {
    const { state, read } = fakeElu();
    const s = eventLoopUtilization({ read });
    expect(s.sample(0)).toBe(0); // loop not started yet: 0/0
    state.active += 30;
    state.idle += 10;
    expect(s.sample(0)).toBe(0.75);
    expect(s.sample(0)).toBe(0.75);
    s.stop!();
    state.active += 1;
    state.idle += 1;
    expect(s.sample(0)).toBe(0); // restarted: a fresh baseline
  });

  it('rejects invalid options', () => {
    for (const options of [{ target: 0.9, limit: 0.9 }, { limit: 1.1 }, { target: -0.1 }, { read: 3 }]) {
      expect(() => eventLoopUtilization(options as never)).toThrow();
      try {
        eventLoopUtilization(options as never);
      } catch (e) {
        expect(isConfigError(e)).toBe(true);
      }
    }
  });
});
