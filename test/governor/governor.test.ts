import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import {
  createGovernor,
  type DecisionRecord,
  GOVERNOR_DEFAULTS,
  Governor,
  type SignalErrorEvent,
} from '../../src/governor/index.js';
import { effectiveFactor } from '../../src/limiters/priority.js';
import type { Signal } from '../../src/signals/types.js';
import { scripted } from './helpers.js';

function overloadedGovernor(extra: Record<string, unknown> = {}) {
  const clock = new ManualClock();
  let p = 0;
  const sig = scripted('s', () => p);
  const g = new Governor({ signals: [sig], clock, warmupMs: 0, ...extra });
  return { clock, g, sig, set: (v: number) => (p = v) };
}

describe('lifecycle', () => {
  it('start and stop are idempotent; the timer ticks every intervalMs; stop leaves no timer and stops the signals', () => {
    const { clock, g, sig } = overloadedGovernor();
    let ticks = 0;
    g.on('tick', () => ticks++);
    g.start();
    g.start();
    expect(clock.pendingTimers).toBe(1);
    expect(sig.starts).toBe(1);
    clock.advance(1000);
    expect(ticks).toBe(4);
    g.stop();
    g.stop();
    expect(clock.pendingTimers).toBe(0);
    expect(sig.stops).toBe(1);
    clock.advance(10_000);
    expect(ticks).toBe(4);
    expect(g.running).toBe(false);
    expect(g.state).toBe('stopped');
  });

  it('stop returns the factor to 1 and tells subscribers; a restart begins afresh with a new warm-up', () => {
    const { clock, g, set } = overloadedGovernor({ warmupMs: 1000 });
    const seen: number[] = [];
    g.subscribe((f) => seen.push(f));
    g.start();
    set(1);
    clock.advance(10_000);
    expect(g.factor).toBeLessThan(1);
    g.stop();
    expect(g.factor).toBe(1);
    expect(seen.at(-1)).toBe(1);
    g.start();
    expect(g.snapshot().smoothedPressure).toBe(0);
    clock.advance(750);
    expect(g.state).toBe('warming');
    expect(g.factor).toBe(1);
    g.stop();
    expect(clock.pendingTimers).toBe(0);
  });

  it('tick() without start() drives the governor by hand and schedules nothing', () => {
    const { clock, g, set } = overloadedGovernor();
    set(1);
    for (let i = 0; i < 40; i++) {
      clock.advance(250);
      g.tick();
    }
    expect(g.factor).toBeLessThan(1);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('warm-up and shadow mode', () => {
  it('observes during warm-up without throttling, then throttles', () => {
    const { clock, g, set } = overloadedGovernor({ warmupMs: 10_000 });
    const records: DecisionRecord[] = [];
    g.on('state', (r) => records.push(r));
    g.start();
    set(1);
    clock.advance(9_750);
    expect(g.factor).toBe(1);
    expect(g.state).toBe('warming');
    expect(g.snapshot().smoothedPressure).toBeGreaterThan(0.99); // it did observe
    expect(records[0]!.reason).toMatch(/^warming: 0 s of 10 s warm-up, observing only/);
    expect(records[0]!.previousFactor).toBe(1);
    clock.advance(500);
    expect(g.factor).toBeLessThan(1); // engaged on the first tick after warm-up
    expect(g.state).toBe('engaged');
    g.stop();
  });

  it('shadow mode computes and reports the factor but applies 1', () => {
    const { clock, g, set } = overloadedGovernor({ mode: 'shadow' });
    const records: DecisionRecord[] = [];
    const applied: number[] = [];
    g.on('change', (r) => records.push(r));
    g.subscribe((f) => applied.push(f));
    g.start();
    set(1);
    clock.advance(10_000);
    expect(g.computedFactor).toBeLessThan(0.5);
    expect(g.factor).toBe(1);
    expect(g.factorFor('sheddable')).toBe(1);
    expect(applied).toEqual([]);
    expect(records.length).toBeGreaterThan(3);
    for (const r of records) {
      expect(r.appliedFactor).toBe(1);
      expect(r.factor).toBeLessThan(r.previousFactor);
    }
    const snap = g.snapshot();
    expect(snap.mode).toBe('shadow');
    expect(snap.factor).toBe(g.computedFactor);
    expect(snap.appliedFactor).toBe(1);
    g.stop();
  });
});

describe('signal failures', () => {
  const failing = (how: 'throw' | 'nan' | 'string', onFailure?: 'ignore' | 'overloaded'): Signal => ({
    name: `bad-${how}`,
    unit: 'ms',
    target: 50,
    limit: 250,
    ...(onFailure === undefined ? {} : { onFailure }),
    sample() {
      if (how === 'throw') throw new Error('probe exploded');
      return (how === 'nan' ? Number.NaN : 'x') as number;
    },
  });

  it("'ignore' (the default): reported, counted, left out of the tick; the other signals decide", () => {
    const clock = new ManualClock();
    const errors: SignalErrorEvent[] = [];
    const g = new Governor({
      signals: [failing('throw'), failing('nan'), failing('string'), scripted('good', () => 0.3)],
      clock,
      warmupMs: 0,
    });
    g.on('signalError', (e) => errors.push(e));
    const records: DecisionRecord[] = [];
    g.on('state', (r) => records.push(r));
    g.start();
    clock.advance(1000);
    expect(errors).toHaveLength(12);
    expect(errors[0]!.signal).toBe('bad-throw');
    expect((errors[0]!.error as Error).message).toBe('probe exploded');
    expect((errors[1]!.error as Error).message).toMatch(/bad-nan returned NaN/);
    expect((errors[2]!.error as Error).message).toMatch(/bad-string returned string/);
    const snap = g.snapshot();
    expect(snap.signals['bad-throw']!.failures).toBe(4);
    expect(snap.signals['bad-throw']!.ok).toBe(false);
    expect(snap.signals['good']!.failures).toBe(0);
    expect(snap.dominant!.name).toBe('good');
    expect(snap.signals['good']!.pressure).toBe(0.3);
    expect(snap.signals['bad-nan']!.pressure).toBe(0);
    expect(snap.pressure).toBe(0.3);
    clock.advance(60_000);
    expect(g.factor).toBe(1);
    g.stop();
  });

  it("'overloaded': counts as pressure 1 and cuts, naming the failed signal", () => {
    const clock = new ManualClock();
    const g = new Governor({
      signals: [failing('throw', 'overloaded'), scripted('good', () => 0)],
      clock,
      warmupMs: 0,
    });
    const changes: DecisionRecord[] = [];
    g.on('change', (r) => changes.push(r));
    let errors = 0;
    g.on('signalError', (e) => {
      errors++;
      expect(e.onFailure).toBe('overloaded');
    });
    g.start();
    clock.advance(5000);
    expect(g.factor).toBeLessThan(1);
    expect(errors).toBe(20);
    expect(changes[0]!.dominant!.name).toBe('bad-throw');
    expect(Number.isNaN(changes[0]!.dominant!.value)).toBe(true);
    expect(changes[0]!.pressures).toEqual({ 'bad-throw': 1, good: 0 });
    expect(changes[0]!.reason).toMatch(/^engaged: bad-throw failed \(counted as overloaded, pressure 1\)/);
    expect(g.snapshot().signals['bad-throw']!.pressure).toBe(1);
    g.stop();
  });

  it('a signal whose start() or stop() throws is reported, and the governor still starts and stops', () => {
    const clock = new ManualClock();
    const bad: Signal = {
      name: 'fragile',
      unit: 'count',
      target: 1,
      limit: 2,
      sample: () => 0,
      start() {
        throw new Error('no start');
      },
      stop() {
        throw new Error('no stop');
      },
    };
    const g = new Governor({ signals: [bad], clock });
    const errors: string[] = [];
    g.on('signalError', (e) => errors.push((e.error as Error).message));
    expect(() => g.start()).not.toThrow();
    expect(() => g.stop()).not.toThrow();
    expect(errors).toEqual(['no start', 'no stop']);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('listeners', () => {
  it('a throwing listener or subscriber breaks neither the tick nor the other listeners', () => {
    const { clock, g, set } = overloadedGovernor();
    const reported: Array<[unknown, string]> = [];
    g.on('listenerError', (e, ev) => reported.push([e, ev]));
    g.on('listenerError', () => {
      throw new Error('even the error listener throws');
    });
    g.on('change', () => {
      throw new Error('boom');
    });
    let after = 0;
    g.on('change', () => after++);
    g.on('tick', () => {
      throw new Error('tick boom');
    });
    g.subscribe(() => {
      throw new Error('sub boom');
    });
    const seen: number[] = [];
    g.subscribe((f) => seen.push(f));
    let onceCalls = 0;
    g.once('change', () => {
      onceCalls++;
      throw new Error('once boom');
    });
    g.start();
    set(1);
    expect(() => clock.advance(5000)).not.toThrow();
    expect(g.factor).toBeLessThan(1);
    expect(after).toBeGreaterThan(3);
    expect(seen.length).toBe(after);
    expect(onceCalls).toBe(1);
    expect(g.snapshot().ticks).toBe(20);
    const events = new Set(reported.map(([, ev]) => ev));
    expect(events).toEqual(new Set(['change', 'tick', 'subscribe']));
    expect(g.snapshot().listenerErrors).toBe(reported.length);
    g.stop();
  });

  it('subscribe returns an unsubscribe; many limiters can share one governor', () => {
    const { clock, g, set } = overloadedGovernor();
    const a: number[] = [];
    const b: number[] = [];
    const offA = g.subscribe((f) => a.push(f));
    g.subscribe((f) => b.push(f));
    g.start();
    set(1);
    clock.advance(2000);
    offA();
    offA();
    const n = a.length;
    clock.advance(2000);
    expect(n).toBeGreaterThan(0);
    expect(a.length).toBe(n);
    expect(b.length).toBeGreaterThan(n);
    expect(b.at(-1)).toBe(g.factor);
    g.stop();
  });
});

describe('records, snapshot and priorities', () => {
  it('explains each change in words and numbers', () => {
    const clock = new ManualClock();
    let ms = 20;
    const eld = scripted('event-loop-delay', () => ms, { target: 50, limit: 250, unit: 'ms' });
    const g = new Governor({ signals: [eld, scripted('cpu', () => 0.1)], clock, warmupMs: 0 });
    const records: DecisionRecord[] = [];
    g.on('change', (r) => records.push(r));
    g.start();
    clock.advance(1000);
    ms = 184;
    clock.advance(6000);
    const first = records[0]!;
    expect(first.previousFactor).toBe(1);
    expect(first.factor).toBeLessThan(1);
    expect(first.appliedFactor).toBe(first.factor);
    expect(first.state).toBe('engaged');
    expect(first.dominant).toEqual({
      name: 'event-loop-delay',
      unit: 'ms',
      value: 184,
      target: 50,
      limit: 250,
      pressure: 0.67,
    });
    expect(first.pressures).toEqual({ 'event-loop-delay': 0.67, cpu: 0.1 });
    expect(first.reason).toMatch(
      /^engaged: event-loop-delay 184 ms > target 50 ms \(pressure 0\.67\); smoothed 0\.5\d* > engage 0\.5, cut \d/,
    );
    ms = 20;
    clock.advance(20_000);
    const last = records.at(-1)!;
    expect(last.factor).toBe(1);
    expect(last.reason).toMatch(
      /^recovered: pressure 0\.\d+ below release 0\.2 for \d+(\.\d+)? s; factor 1$/,
    );
    expect(records.some((r) => /^recovering: pressure 0(\.\d+)? below release 0\.2 for/.test(r.reason))).toBe(
      true,
    );
    g.stop();
  });

  it('snapshot() reports factor, state, pressures and each signal', () => {
    const { clock, g, set } = overloadedGovernor();
    g.start();
    set(0.4);
    clock.advance(250);
    const s = g.snapshot();
    expect(s).toMatchObject({
      running: true,
      mode: 'enforce',
      factor: 1,
      appliedFactor: 1,
      state: 'idle',
      pressure: 0.4,
      ticks: 1,
      listenerErrors: 0,
      dominant: { name: 's', value: 0.4, pressure: 0.4 },
    });
    expect(s.smoothedPressure).toBeCloseTo(0.4 * (1 - Math.exp(-250 / 2000)), 12);
    expect(s.signals['s']).toEqual({
      unit: 'ratio',
      value: 0.4,
      target: 0,
      limit: 1,
      pressure: 0.4,
      failures: 0,
      onFailure: 'ignore',
      ok: true,
    });
    g.stop();
  });

  it('factorFor maps the applied factor through effectiveFactor, named and numeric levels alike', () => {
    const { clock, g, set } = overloadedGovernor();
    expect(g.factorFor('sheddable')).toBe(1);
    g.start();
    set(1);
    clock.advance(4000);
    const f = g.factor;
    expect(f).toBeLessThan(1);
    expect(g.factorFor('normal')).toBe(f);
    expect(g.factorFor('sheddable')).toBeCloseTo(f * f, 12);
    expect(g.factorFor('critical')).toBeCloseTo(Math.sqrt(f), 12);
    expect(g.factorFor(0.25)).toBe(effectiveFactor(f, 0.25));
    expect(g.factorFor('sheddable')).toBeLessThan(g.factorFor(0.25));
    expect(() => g.factorFor(2)).toThrow(/priority/);
    g.stop();
  });
});

describe('options', () => {
  const sig = scripted('s', () => 0);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ intervalMs: 0 }, /Expected `intervalMs` to be a finite number from 1 to 3600000, got `0` \(number\)/],
    [{ smoothingMs: -1 }, /Expected `smoothingMs` to be a finite number > 0, got `-1`/],
    [{ engageAt: 1 }, /Expected `engageAt` to be a number > 0 and < 1, got `1` \(number\)/],
    [{ releaseAt: 0.5 }, /Expected `releaseAt` to be a number >= 0 and < engageAt \(0\.5\), got `0\.5`/],
    [{ engageAt: 0.3, releaseAt: 0.4 }, /`releaseAt` .* < engageAt \(0\.3\), got `0\.4`/],
    [{ floor: 1 }, /Expected `floor` to be a number >= 0 and < 1, got `1`/],
    [{ maxCutPerTick: 0 }, /Expected `maxCutPerTick` to be a number > 0 and < 1, got `0`/],
    [{ recoverPerSec: 0 }, /Expected `recoverPerSec` to be a finite number > 0 and <= 1000, got `0`/],
    [{ cooldownMs: Number.NaN }, /Expected `cooldownMs` to be a finite number >= 0, got `NaN`/],
    [{ warmupMs: -5 }, /Expected `warmupMs` to be a finite number >= 0, got `-5`/],
    [{ mode: 'dry-run' }, /Expected `mode` to be one of 'enforce', 'shadow', got `"dry-run"` \(string\)/],
    [{ clock: {} }, /Expected `clock` to be a Clock/],
    [{ intervalMS: 100 }, /Expected `Governor\.intervalMS` to be one of the known options/],
    [{ signals: [] }, /Expected `signals` to be a non-empty array of Signal objects, got `\[\]`/],
    [{ signals: [sig, sig] }, /Expected `signals\[1\]\.name` to be a name no other signal has, got `"s"`/],
    [
      { signals: [{ ...sig, limit: 0 }] },
      /Expected `signals\[0\]\.limit` to be a finite number > target \(0\)/,
    ],
    [{ signals: [{ ...sig, sample: 1 }] }, /Expected `signals\[0\]\.sample` to be a function/],
    [
      { signals: [{ ...sig, onFailure: 'panic' }] },
      /Expected `signals\[0\]\.onFailure` to be one of 'ignore', 'overloaded'/,
    ],
  ];
  it.each(bad)('rejects %o', (opts, message) => {
    let caught: unknown;
    try {
      new Governor({ signals: [sig], ...opts } as never);
    } catch (e) {
      caught = e;
    }
    expect(isConfigError(caught)).toBe(true);
    expect((caught as Error).message).toMatch(message);
  });

  it('exports frozen defaults and resolves them into frozen options', () => {
    expect(Object.isFrozen(GOVERNOR_DEFAULTS)).toBe(true);
    const g = new Governor({ signals: [sig] });
    expect(Object.isFrozen(g.options)).toBe(true);
    const { clock: _c, ...rest } = g.options;
    expect(rest).toMatchObject({
      intervalMs: 250,
      smoothingMs: 2000,
      engageAt: 0.5,
      releaseAt: 0.2,
      floor: 0.05,
      maxCutPerTick: 0.2,
      cutIntervalMs: 1000,
      recoverPerSec: 0.05,
      cooldownMs: 2000,
      warmupMs: 10_000,
      mode: 'enforce',
    });
  });

  it('createGovernor without signals watches the default set, on the given clock', () => {
    const clock = new ManualClock();
    const g = createGovernor({ clock });
    expect(g.options.signals.map((s) => s.name)).toEqual(['event-loop-delay', 'heap-memory', 'rss-memory']);
    const withOwn = createGovernor({ signals: [sig], clock });
    expect(withOwn.options.signals).toEqual([sig]);
  });
});
