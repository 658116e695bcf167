/**
 * Bad input gets a ConfigError that names the option, prints the value briefly and says what is
 * allowed: at construction for a clock, on the call for per-call options, for `null` anywhere it
 * has no documented meaning. Never a TypeError, never NaN.
 */
import { describe, expect, it } from 'vitest';
import { TurnBudget } from '../src/admission/turn-budget.js';
import { createHttpGuard } from '../src/adapters/http.js';
import { ManualClock } from '../src/clock.js';
import {
  type ConfigError,
  describe as describeValue,
  isConfigError,
  MAX_VALUE_CHARS,
} from '../src/errors.js';
import { fleetFactor, type MinFactor, minFactor } from '../src/governor/cluster.js';
import { createGovernor } from '../src/governor/index.js';
import { ConcurrencyLimiter } from '../src/limiters/concurrency/limiter.js';
import { ManualFactor } from '../src/limiters/factor.js';
import { FixedWindow } from '../src/limiters/fixed-window.js';
import { createLimiter } from '../src/limiters/keyed-limiter.js';
import { LeakyBucket } from '../src/limiters/leaky-bucket.js';
import { effectiveFactor } from '../src/limiters/priority.js';
import { Shedder } from '../src/limiters/shedder.js';
import { SlidingWindowCounter, SlidingWindowLog } from '../src/limiters/sliding-window.js';
import { TokenBucket } from '../src/limiters/token-bucket.js';
import type { FactorSource } from '../src/limiters/types.js';
import { logDecisions } from '../src/observability/log.js';
import { cpu } from '../src/signals/cpu.js';
import { eventLoopDelay } from '../src/signals/event-loop-delay.js';
import { refusalShare } from '../src/signals/refusal-share.js';
import { MemoryStore } from '../src/stores/memory.js';

/** The ConfigError that `run` throws (or rejects with); fails the test on anything else. */
async function configError(run: () => unknown): Promise<ConfigError> {
  let caught: unknown;
  try {
    await run();
  } catch (err) {
    caught = err;
  }
  if (!isConfigError(caught)) {
    throw new Error(
      `expected a ConfigError, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`,
    );
  }
  return caught as ConfigError;
}

const full = () => new ManualClock(1_000);
const nowOnly = () => {
  const c = full();
  return { now: () => c.now() };
};

/** Every constructor that takes a clock, with the rest of its options valid. */
const TAKES_A_CLOCK: ReadonlyArray<[string, (clock: unknown) => unknown]> = [
  ['TokenBucket', (clock) => new TokenBucket({ ratePerSec: 1, burst: 1, clock } as never)],
  ['LeakyBucket', (clock) => new LeakyBucket({ ratePerSec: 1, capacity: 1, clock } as never)],
  ['FixedWindow', (clock) => new FixedWindow({ limit: 1, windowMs: 1000, clock } as never)],
  ['SlidingWindowCounter', (clock) => new SlidingWindowCounter({ limit: 1, windowMs: 1000, clock } as never)],
  ['SlidingWindowLog', (clock) => new SlidingWindowLog({ limit: 1, windowMs: 1000, clock } as never)],
  ['Shedder', (clock) => new Shedder({ factor: new ManualFactor(1), clock } as never)],
  ['ConcurrencyLimiter', (clock) => new ConcurrencyLimiter({ limit: 1, clock } as never)],
  ['TurnBudget', (clock) => new TurnBudget({ clock } as never)],
  ['createLimiter', (clock) => createLimiter({ ratePerSec: 1, burst: 1, clock } as never)],
  [
    'createLimiter (window)',
    (clock) => createLimiter({ algorithm: 'fixed-window', limit: 1, windowMs: 1000, clock } as never),
  ],
  [
    'createLimiter (store)',
    (clock) => createLimiter({ store: new MemoryStore(), ratePerSec: 1, burst: 1, clock } as never),
  ],
  ['MemoryStore', (clock) => new MemoryStore({ clock } as never)],
  ['createGovernor', (clock) => createGovernor({ clock } as never)],
  ['fleetFactor', (clock) => fleetFactor({ process: { on() {}, off() {} }, clock } as never)],
  ['cpu', (clock) => cpu({ clock } as never)],
  ['eventLoopDelay', (clock) => eventLoopDelay({ clock } as never)],
  ['refusalShare', (clock) => refusalShare({ clock } as never)],
  ['logDecisions', (clock) => logDecisions({ sink: () => {}, clock } as never)],
];

describe('clock: validated at construction everywhere it is taken', () => {
  const bad: ReadonlyArray<[string, unknown]> = [
    ['a number', 5],
    ['an empty object', {}],
    ['now not a function', { now: 5, setTimeout: () => ({ cancel() {} }) }],
    ['now() returning a string', { now: () => '12', setTimeout: () => ({ cancel() {} }) }],
    ['now() returning NaN', { now: () => Number.NaN, setTimeout: () => ({ cancel() {} }) }],
    ['a function', () => 0],
  ];
  for (const [name, make] of TAKES_A_CLOCK) {
    it(`${name}: a bad clock is a ConfigError naming \`clock\`, and a good one works`, async () => {
      for (const [what, clock] of bad) {
        const err = await configError(() => make(clock));
        expect(err.option, `${name}, ${what}`).toMatch(/^clock(\.now\(\))?$/);
        expect(err.message, `${name}, ${what}`).toMatch(/Clock|milliseconds/);
      }
      const ok = make(full()) as { close?: () => void; stop?: () => void };
      ok.close?.();
      ok.stop?.();
    });
  }

  it('a clock without setTimeout is refused where timers are needed, and accepted where only now() is read', async () => {
    for (const make of [
      () => new TokenBucket({ ratePerSec: 1, burst: 1, clock: nowOnly() as never }),
      () => new LeakyBucket({ ratePerSec: 1, capacity: 1, clock: nowOnly() as never }),
      () => new ConcurrencyLimiter({ limit: 1, clock: nowOnly() as never }),
      () => createLimiter({ ratePerSec: 1, burst: 1, clock: nowOnly() as never }),
    ]) {
      const err = await configError(make);
      expect(err.option).toBe('clock');
      expect(err.message).toContain('setTimeout()');
    }
    const w = new FixedWindow({ limit: 2, windowMs: 1000, clock: nowOnly() as never });
    expect(w.take().allowed).toBe(true);
    const s = new Shedder({ factor: new ManualFactor(1), clock: nowOnly() as never });
    expect(s.admit().allowed).toBe(true);
  });
});

describe('per-call options are checked like constructor options', () => {
  const clock = full();
  it('TokenBucket.acquire refuses a string, null or negative maxWaitMs, a non-signal and a non-object', async () => {
    const b = new TokenBucket({ ratePerSec: 1, burst: 1, clock });
    b.take();
    for (const maxWaitMs of ['5000', null, -1, Number.NaN]) {
      const err = await configError(() => b.acquire(1, { maxWaitMs } as never));
      expect(err.option).toBe('maxWaitMs');
      expect(err.value).toBe(maxWaitMs);
    }
    expect((await configError(() => b.acquire(1, { signal: 'stop' } as never))).option).toBe('signal');
    expect((await configError(() => b.acquire(1, null as never))).option).toBe('options');
    expect((await configError(() => b.take(null as never))).option).toBe('cost');
    expect(b.waiting).toBe(0);
    // `signal: null` means no signal, as in fetch(); the wait is still served.
    const p = b.acquire(1, { signal: null as never, maxWaitMs: 5000 });
    clock.advance(1000);
    expect((await p).allowed).toBe(true);
  });

  it('LeakyBucket.schedule refuses a non-signal and a non-object', async () => {
    const b = new LeakyBucket({ ratePerSec: 1, capacity: 2, clock });
    expect((await configError(() => b.schedule(1, { signal: {} } as never))).option).toBe('signal');
    expect((await configError(() => b.schedule(1, 'x' as never))).option).toBe('options');
  });

  it('the keyed limiters refuse null and strings for cost and maxWaitMs (in memory and on a store)', async () => {
    const mem = createLimiter({ ratePerSec: 1, burst: 1, clock });
    const store = createLimiter({ store: new MemoryStore({ clock }), ratePerSec: 1, burst: 1, clock });
    const win = createLimiter({ algorithm: 'fixed-window', limit: 1, windowMs: 1000, clock });
    for (const l of [mem, store]) {
      expect((await configError(() => l.take('k', null as never))).option).toBe('options');
      expect((await configError(() => l.take('k', { cost: null } as never))).option).toBe('cost');
      expect((await configError(() => l.take('k', { cost: '1' } as never))).option).toBe('cost');
      expect((await configError(() => l.acquire('k', { maxWaitMs: '5000' } as never))).option).toBe(
        'maxWaitMs',
      );
      expect((await configError(() => l.acquire('k', { maxWaitMs: null } as never))).option).toBe(
        'maxWaitMs',
      );
      expect((await configError(() => l.acquire('k', { signal: 1 } as never))).option).toBe('signal');
      expect((await configError(() => l.acquire('k', { cost: null } as never))).option).toBe('cost');
    }
    expect((await configError(() => win.take('k', { cost: null } as never))).option).toBe('cost');
    expect((await configError(() => mem.take('k', { priority: null } as never))).option).toBe('priority');
    // Nothing was charged by the refused calls.
    expect(mem.take('k').allowed).toBe(true);
  });

  it('ConcurrencyLimiter.acquire refuses null for priority and cost, and a non-signal', async () => {
    const c = new ConcurrencyLimiter({ limit: 1, clock });
    expect((await configError(() => c.acquire({ priority: null } as never))).option).toBe('priority');
    expect((await configError(() => c.acquire({ cost: null } as never))).option).toBe('cost');
    expect((await configError(() => c.acquire({ signal: 'x' } as never))).option).toBe('signal');
    expect((await configError(() => c.tryAcquire({ cost: null } as never))).option).toBe('cost');
    expect(c.snapshot().inFlight).toBe(0);
  });
});

describe('null is refused as an option value, except where it has a meaning', () => {
  it('names the option for constructors and factories', async () => {
    const cases: ReadonlyArray<[() => unknown, string]> = [
      [() => new TokenBucket({ ratePerSec: 1, burst: 1, clock: null } as never), 'TokenBucket.clock'],
      [
        () => new TokenBucket({ ratePerSec: 1, burst: 1, initialTokens: null } as never),
        'TokenBucket.initialTokens',
      ],
      [() => createLimiter({ ratePerSec: 1, burst: 1, maxKeys: null } as never), 'createLimiter.maxKeys'],
      [() => createGovernor({ floor: null } as never), 'Governor.floor'],
      [() => new ConcurrencyLimiter({ maxQueue: null } as never), 'ConcurrencyLimiter.maxQueue'],
      [() => createHttpGuard({ bypass: null } as never), 'HttpGuard.bypass'],
      [() => createHttpGuard({ routes: [{ path: '/a', cost: null }] } as never), 'routes[0].cost'],
    ];
    for (const [make, option] of cases) {
      const err = await configError(make);
      expect(err.option).toBe(option);
      expect(err.message).toContain('null is not accepted');
    }
  });

  it("a guard's `limiter: null` and `shedder: null` still turn that stage off", () => {
    expect(() =>
      createHttpGuard({ limiter: null, shedder: null, routes: [{ path: '/a', limiter: null }] }),
    ).not.toThrow();
  });
});

describe('factors from a source are kept in range', () => {
  const source = (factor: number): FactorSource => ({
    factor,
    factorFor: () => factor,
    subscribe: () => () => {},
  });
  it('minFactor clamps a source below 0 to 0 and skips a NaN source', () => {
    expect(minFactor(source(-5)).factor).toBe(0);
    expect(minFactor(source(-5), source(0.5)).factor).toBe(0);
    expect(minFactor(source(Number.NaN)).factor).toBe(1);
    expect(minFactor(source(Number.NaN), source(0.4)).factor).toBe(0.4);
    expect(minFactor(source(7)).factor).toBe(1);
    const m: MinFactor = minFactor(source(-5));
    for (const p of ['critical', 'normal', 'sheddable'] as const) expect(m.factorFor(p)).toBe(0);
  });

  it('effectiveFactor counts NaN as 0 and clamps out-of-range factors, for every priority', () => {
    for (const p of ['critical', 'normal', 'sheddable', 0, 0.3, 1] as const) {
      expect(effectiveFactor(Number.NaN, p)).toBe(0);
      expect(effectiveFactor(-5, p)).toBe(0);
      expect(effectiveFactor(7, p)).toBe(1);
    }
  });
});

describe('errors name the option the caller wrote', () => {
  it('a bad turnBudgetMs names turnBudgetMs, not the internal budgetMs', async () => {
    for (const turnBudgetMs of [-1, 'x', Number.NaN, 0]) {
      const err = await configError(() => createHttpGuard({ turnBudgetMs } as never));
      expect(err.option).toBe('turnBudgetMs');
    }
  });
  it('a Shedder ratePerSec of 1e308 names ratePerSec', async () => {
    const err = await configError(() => new Shedder({ factor: 1, ratePerSec: 1e308 }));
    expect(err.option).toBe('ratePerSec');
  });
});

describe('ConfigError prints values briefly', () => {
  it('a governor where an option does not belong is named, not dumped', async () => {
    const governor = createGovernor({ clock: full() });
    const err = await configError(() => createLimiter({ ratePerSec: 1, burst: 1, governor } as never));
    expect(err.message).toContain('[object Governor]');
    expect(err.message.length).toBeLessThan(300);
    const asNumber = await configError(() => new TokenBucket({ ratePerSec: governor, burst: 1 } as never));
    expect(asNumber.message).toBe(
      'Expected `ratePerSec` to be a finite number > 0, got `[object Governor]` (object)',
    );
  });
  it('long strings, big and deep objects are cut at MAX_VALUE_CHARS with …', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    const circular: Record<string, unknown> = { x: 1 };
    circular.self = circular;
    const values = [
      'x'.repeat(10_000),
      { big: 'y'.repeat(10_000) },
      Array.from({ length: 1e5 }, (_, i) => i),
      deep,
      circular,
    ];
    for (const v of values) {
      const text = describeValue(v);
      expect(text.length).toBeLessThanOrEqual(MAX_VALUE_CHARS + 20);
      expect(text).toContain('…');
    }
    expect(describeValue('abc')).toBe('`"abc"` (string)');
    expect(describeValue({ a: 1, b: [2, 'c'] })).toBe('`{"a":1,"b":[2,"c"]}` (object)');
    expect(describeValue([1, 2])).toBe('`[1,2]` (array)');
    expect(describeValue(new Map())).toBe('`[object Map]` (object)');
    expect(describeValue(Object.create(null))).toBe('`{}` (object)');
  });
});
