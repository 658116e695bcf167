import { channel } from 'node:diagnostics_channel';
import { Registry, register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { createGovernor } from '../../src/governor/index.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/index.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import {
  DECISION_CHANNEL,
  type DecisionMessage,
  RESPONSE_CHANNEL,
  type ResponseMessage,
  STORE_CHANNEL,
  type StoreCircuitState,
  type StoreMessage,
} from '../../src/observability/channels.js';
import { createMetrics, type SpillwayMetrics } from '../../src/observability/prometheus/index.js';
import { scripted } from '../governor/helpers.js';
import { find, parseExposition, value } from './exposition.js';

const opened: SpillwayMetrics[] = [];
afterEach(() => {
  for (const m of opened.splice(0)) m.close();
});

function metrics(options: Partial<Parameters<typeof createMetrics>[0]> = {}) {
  const registry = new Registry();
  const m = createMetrics({ registry, ...options });
  opened.push(m);
  return { m, registry, scrape: async () => parseExposition(await registry.metrics()) };
}

function decision(over: Partial<DecisionMessage>): DecisionMessage {
  return {
    name: 'api',
    outcome: 'admitted',
    stage: 'shedder',
    reason: 'ok',
    priority: 'normal',
    route: '/users',
    factor: 1,
    limit: 100,
    retryAfterMs: 0,
    ...over,
  };
}

describe('createMetrics: the governor, read at scrape time', () => {
  it('shows factor, effective factors, pressures, the dominant signal and the state after a scripted overload', async () => {
    const clock = new ManualClock();
    let queue = 0;
    const governor = createGovernor({
      clock,
      warmupMs: 0,
      cutIntervalMs: 0,
      signals: [
        scripted('queue', () => queue, { target: 10, limit: 50, unit: 'requests' }),
        scripted('lag', () => 60, { target: 50, limit: 250, unit: 'ms' }),
      ],
    });
    const { m, scrape } = metrics();
    m.observeGovernor(governor, { name: 'api' });
    const changes = { cut: 0, raise: 0 };
    governor.on('change', (r) => {
      if (r.factor < r.previousFactor) changes.cut++;
      else changes.raise++;
    });

    governor.start();
    let s = await scrape();
    expect(value(s, 'spillway_factor', { name: 'api' })).toBe(1);
    expect(value(s, 'spillway_governor_state', { name: 'api', state: 'idle' })).toBe(1);

    queue = 46; // pressure (46-10)/40 = 0.9 on queue, 0.05 on lag
    for (let i = 0; i < 20; i++) {
      clock.advance(250);
    }
    s = await scrape();
    const f = governor.factor;
    expect(f).toBeLessThan(1);
    expect(value(s, 'spillway_factor', { name: 'api' })).toBeCloseTo(f, 12);
    expect(value(s, 'spillway_computed_factor', { name: 'api' })).toBeCloseTo(governor.computedFactor, 12);
    expect(value(s, 'spillway_effective_factor', { name: 'api', priority: 'sheddable' })).toBeCloseTo(
      f * f,
      12,
    );
    expect(value(s, 'spillway_effective_factor', { name: 'api', priority: 'normal' })).toBeCloseTo(f, 12);
    expect(value(s, 'spillway_effective_factor', { name: 'api', priority: 'critical' })).toBeCloseTo(
      Math.sqrt(f),
      12,
    );
    expect(value(s, 'spillway_pressure', { name: 'api' })).toBeCloseTo(0.9, 12);
    expect(value(s, 'spillway_signal_value', { name: 'api', signal: 'queue', unit: 'requests' })).toBe(46);
    expect(value(s, 'spillway_signal_value', { name: 'api', signal: 'lag', unit: 'ms' })).toBe(60);
    expect(value(s, 'spillway_signal_pressure', { name: 'api', signal: 'lag' })).toBeCloseTo(0.05, 12);
    expect(value(s, 'spillway_signal_target', { name: 'api', signal: 'queue', unit: 'requests' })).toBe(10);
    expect(value(s, 'spillway_signal_limit', { name: 'api', signal: 'queue', unit: 'requests' })).toBe(50);
    expect(
      find(s, 'spillway_dominant_signal', { name: 'api' }).map((x) => [x.labels.signal, x.value]),
    ).toEqual([['queue', 1]]);
    expect(value(s, 'spillway_governor_state', { name: 'api', state: governor.state })).toBe(1);
    expect(find(s, 'spillway_governor_state', { name: 'api' }).reduce((a, x) => a + x.value, 0)).toBe(1);
    expect(changes.cut).toBeGreaterThan(0);
    expect(value(s, 'spillway_factor_changes_total', { name: 'api', direction: 'cut' })).toBe(changes.cut);
    expect(value(s, 'spillway_signal_failures_total', { name: 'api', signal: 'queue' })).toBe(0);

    // The lag signal takes over as the dominant one.
    queue = 0;
    clock.advance(250);
    s = await scrape();
    expect(find(s, 'spillway_dominant_signal', { name: 'api' }).map((x) => x.labels.signal)).toEqual(['lag']);
    governor.stop();
    s = await scrape();
    expect(value(s, 'spillway_factor', { name: 'api' })).toBe(1);
    expect(value(s, 'spillway_governor_state', { name: 'api', state: 'stopped' })).toBe(1);
    expect(value(s, 'spillway_factor_changes_total', { name: 'api', direction: 'raise' })).toBe(
      changes.raise,
    );
  });

  it('tells two governors apart by name, and forgets one that is no longer observed', async () => {
    const clock = new ManualClock();
    const a = createGovernor({ clock, signals: [scripted('x', () => 0)] });
    const b = createGovernor({ clock, signals: [scripted('y', () => 0)] });
    const { m, scrape } = metrics();
    m.observeGovernor(a, { name: 'a' });
    const stopB = m.observeGovernor(b, { name: 'b' });
    let s = await scrape();
    expect(find(s, 'spillway_factor').map((x) => x.labels.name)).toEqual(['a', 'b']);
    stopB();
    s = await scrape();
    expect(find(s, 'spillway_factor').map((x) => x.labels.name)).toEqual(['a']);
    expect(() => m.observeGovernor(b, { name: 'a' })).toThrow(/`name`/);
  });

  it('counts signal failures', async () => {
    const clock = new ManualClock();
    const g = createGovernor({
      clock,
      warmupMs: 0,
      signals: [
        scripted('broken', () => {
          throw new Error('no reading');
        }),
      ],
    });
    g.on('signalError', () => {});
    const { m, scrape } = metrics();
    m.observeGovernor(g);
    g.tick();
    g.tick();
    g.tick();
    const s = await scrape();
    expect(value(s, 'spillway_signal_failures_total', { name: 'default', signal: 'broken' })).toBe(3);
    expect(find(s, 'spillway_signal_value')).toEqual([]);
  });
});

describe('createMetrics: decisions from DECISION_CHANNEL', () => {
  const decisions = channel(DECISION_CHANNEL);

  it('counts decisions by name, outcome, stage, priority and route, and histograms queue waits in seconds', async () => {
    const { scrape } = metrics();
    decisions.publish(decision({}));
    decisions.publish(decision({}));
    decisions.publish(
      decision({ outcome: 'shed', reason: 'shed', priority: 'sheddable', retryAfterMs: 1000 }),
    );
    decisions.publish(decision({ outcome: 'limited', stage: 'key', reason: 'limited', route: '/login' }));
    decisions.publish(decision({ name: 'pg', stage: 'concurrency', outcome: 'queued', route: 'pool' }));
    decisions.publish(decision({ name: 'pg', stage: 'concurrency', route: 'pool', queueWaitMs: 3 }));
    decisions.publish(
      decision({ name: 'pg', stage: 'concurrency', outcome: 'timed_out', route: 'pool', queueWaitMs: 700 }),
    );
    decisions.publish(
      decision({ name: 'pg', stage: 'concurrency', outcome: 'canceled', route: 'pool', queueWaitMs: 40 }),
    );
    decisions.publish(decision({ priority: 0.3 }));
    const s = await scrape();
    const d = (labels: Record<string, string>) => value(s, 'spillway_decisions_total', labels);
    expect(
      d({ name: 'api', outcome: 'admitted', stage: 'shedder', priority: 'normal', route: '/users' }),
    ).toBe(2);
    expect(
      d({ name: 'api', outcome: 'shed', stage: 'shedder', priority: 'sheddable', route: '/users' }),
    ).toBe(1);
    expect(d({ name: 'api', outcome: 'limited', stage: 'key', priority: 'normal', route: '/login' })).toBe(1);
    expect(d({ name: 'api', outcome: 'admitted', stage: 'shedder', priority: '0.3', route: '/users' })).toBe(
      1,
    );
    expect(
      d({ name: 'pg', outcome: 'queued', stage: 'concurrency', priority: 'normal', route: 'pool' }),
    ).toBe(1);
    expect(
      d({ name: 'pg', outcome: 'timed_out', stage: 'concurrency', priority: 'normal', route: 'pool' }),
    ).toBe(1);
    expect(
      d({ name: 'pg', outcome: 'canceled', stage: 'concurrency', priority: 'normal', route: 'pool' }),
    ).toBe(1);
    expect(find(s, 'spillway_decisions_total').reduce((a, x) => a + x.value, 0)).toBe(9);

    const admittedWait = { name: 'pg', outcome: 'admitted', priority: 'normal' };
    expect(value(s, 'spillway_queue_wait_seconds_count', admittedWait)).toBe(1);
    expect(value(s, 'spillway_queue_wait_seconds_sum', admittedWait)).toBeCloseTo(0.003, 12);
    expect(value(s, 'spillway_queue_wait_seconds_bucket', { ...admittedWait, le: '0.0025' })).toBe(0);
    expect(value(s, 'spillway_queue_wait_seconds_bucket', { ...admittedWait, le: '0.005' })).toBe(1);
    expect(value(s, 'spillway_queue_wait_seconds_bucket', { ...admittedWait, le: '+Inf' })).toBe(1);
    const timedOut = { name: 'pg', outcome: 'timed_out', priority: 'normal' };
    expect(value(s, 'spillway_queue_wait_seconds_bucket', { ...timedOut, le: '0.5' })).toBe(0);
    expect(value(s, 'spillway_queue_wait_seconds_bucket', { ...timedOut, le: '1' })).toBe(1);
    // The 'queued' message is not a wait that ended: it has no histogram entry.
    expect(find(s, 'spillway_queue_wait_seconds_count', { outcome: 'queued' })).toEqual([]);
  });

  it("caps the route label: past maxRoutes distinct routes, the rest count as 'other'", async () => {
    const { scrape } = metrics({ maxRoutes: 3 });
    for (let i = 0; i < 10; i++) decisions.publish(decision({ route: `/r${i}` }));
    decisions.publish(decision({ route: '/r1' }));
    const s = await scrape();
    const routes = find(s, 'spillway_decisions_total').map((x) => [x.labels.route, x.value]);
    expect(routes).toEqual([
      ['/r0', 1],
      ['/r1', 2],
      ['/r2', 1],
      ['other', 7],
    ]);
  });

  it('histograms decision-to-response times and counts store errors and fallbacks', async () => {
    const { scrape } = metrics();
    const responses = channel(RESPONSE_CHANNEL);
    const stores = channel(STORE_CHANNEL);
    const r = (durationMs: number, outcome: ResponseMessage['outcome'] = 'admitted'): ResponseMessage => ({
      name: 'api',
      outcome,
      route: '/users',
      priority: 'normal',
      status: 200,
      finished: true,
      durationMs,
    });
    responses.publish(r(4));
    responses.publish(r(120));
    responses.publish(r(0.2, 'shed'));
    const err: StoreMessage = {
      name: 'redis',
      event: 'error',
      operation: 'take',
      error: new Error('ECONNREFUSED'),
    };
    stores.publish(err);
    stores.publish(err);
    stores.publish({
      name: 'redis',
      event: 'fallback',
      operation: 'take',
      policy: 'open',
    } satisfies StoreMessage);
    const s = await scrape();
    const adm = { name: 'api', outcome: 'admitted', route: '/users' };
    expect(value(s, 'spillway_decision_to_response_seconds_count', adm)).toBe(2);
    expect(value(s, 'spillway_decision_to_response_seconds_sum', adm)).toBeCloseTo(0.124, 12);
    expect(value(s, 'spillway_decision_to_response_seconds_bucket', { ...adm, le: '0.005' })).toBe(1);
    expect(value(s, 'spillway_decision_to_response_seconds_bucket', { ...adm, le: '0.1' })).toBe(1);
    expect(value(s, 'spillway_decision_to_response_seconds_bucket', { ...adm, le: '0.25' })).toBe(2);
    expect(value(s, 'spillway_decision_to_response_seconds_count', { ...adm, outcome: 'shed' })).toBe(1);
    expect(value(s, 'spillway_store_errors_total', { name: 'redis', operation: 'take' })).toBe(2);
    expect(
      value(s, 'spillway_store_fallbacks_total', { name: 'redis', operation: 'take', policy: 'open' }),
    ).toBe(1);
  });

  it('stops counting after close() and leaves the registry empty', async () => {
    const { m, registry } = metrics();
    decisions.publish(decision({}));
    m.close();
    expect(await registry.metrics()).toBe('\n');
    expect(decisions.hasSubscribers).toBe(false);
    m.close();
  });

  it('with channels: false, counts only what it is handed', async () => {
    const { m, scrape } = metrics({ channels: false });
    decisions.publish(decision({}));
    m.recordDecision(decision({ outcome: 'shed' }));
    const s = await scrape();
    expect(find(s, 'spillway_decisions_total').map((x) => x.labels.outcome)).toEqual(['shed']);
  });
});

describe('createMetrics: limiters, guards and pools, read at scrape time', () => {
  it('reads in-flight work, queue length and the concurrency limit of a pool-like source', async () => {
    const { m, scrape } = metrics();
    const pool = { inFlight: 3, queued: 7, limit: 8 };
    m.observeLimiter(pool, { name: 'pg' });
    let s = await scrape();
    expect(value(s, 'spillway_in_flight', { name: 'pg' })).toBe(3);
    expect(value(s, 'spillway_queue_length', { name: 'pg' })).toBe(7);
    expect(value(s, 'spillway_concurrency_limit', { name: 'pg' })).toBe(8);
    pool.limit = 5;
    pool.queued = 0;
    s = await scrape();
    expect(value(s, 'spillway_concurrency_limit', { name: 'pg' })).toBe(5);
    expect(value(s, 'spillway_queue_length', { name: 'pg' })).toBe(0);
  });

  it('reads a real ConcurrencyLimiter: in flight, waiting, limit and factor', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(1);
    const pool = new ConcurrencyLimiter({
      limit: 2,
      maxQueue: 10,
      maxWaitMs: 1000,
      codel: false,
      factor,
      clock,
    });
    const { m, scrape } = metrics();
    m.observeLimiter(pool, { name: 'pg' });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const waiting = [pool.acquire(), pool.acquire(), pool.acquire()];
    let s = await scrape();
    expect(value(s, 'spillway_in_flight', { name: 'pg' })).toBe(2);
    expect(value(s, 'spillway_queue_length', { name: 'pg' })).toBe(3);
    expect(value(s, 'spillway_concurrency_limit', { name: 'pg' })).toBe(2);
    expect(value(s, 'spillway_limiter_factor', { name: 'pg' })).toBe(1);
    if (a.allowed) a.release();
    if (b.allowed) b.release();
    await Promise.resolve();
    s = await scrape();
    expect(value(s, 'spillway_queue_length', { name: 'pg' })).toBe(1);
    factor.set(0.5);
    s = await scrape();
    expect(value(s, 'spillway_limiter_factor', { name: 'pg' })).toBe(0.5);
    clock.advance(2000);
    for (const d of await Promise.all(waiting)) if (d.allowed) d.release();
    pool.close();
  });

  it('reads the keys and factor of a keyed limiter, and no per-key label', async () => {
    const clock = new ManualClock();
    const factor = new ManualFactor(0.5);
    const limiter = createLimiter({ ratePerSec: 10, burst: 10, factor, clock });
    const { m, scrape, registry } = metrics();
    m.observeLimiter(limiter, { name: 'per-user' });
    for (const k of ['alice', 'bob', 'carol']) limiter.take(k);
    const s = await scrape();
    expect(value(s, 'spillway_limiter_keys', { name: 'per-user' })).toBe(3);
    expect(value(s, 'spillway_limiter_factor', { name: 'per-user' })).toBe(0.5);
    expect(find(s, 'spillway_in_flight')).toEqual([]);
    expect(await registry.metrics()).not.toMatch(/alice|bob|carol/);
  });
});

describe('createMetrics: store circuit state', () => {
  it('shows the last breaker state each store published, 1 for it and 0 for the others', async () => {
    const { scrape } = metrics();
    const stores = channel(STORE_CHANNEL);
    let s = await scrape();
    expect(find(s, 'spillway_store_circuit_state')).toEqual([]);
    const state = (name: string, to: StoreCircuitState, from: StoreCircuitState) =>
      stores.publish({
        name,
        event: 'state',
        operation: 'breaker',
        state: to,
        previousState: from,
      } satisfies StoreMessage);
    state('redis', 'open', 'closed');
    state('cache', 'open', 'closed');
    state('cache', 'half-open', 'open');
    s = await scrape();
    expect(value(s, 'spillway_store_circuit_state', { name: 'redis', state: 'open' })).toBe(1);
    expect(value(s, 'spillway_store_circuit_state', { name: 'redis', state: 'closed' })).toBe(0);
    expect(value(s, 'spillway_store_circuit_state', { name: 'cache', state: 'half-open' })).toBe(1);
    expect(value(s, 'spillway_store_circuit_state', { name: 'cache', state: 'open' })).toBe(0);
    state('redis', 'closed', 'half-open');
    s = await scrape();
    expect(value(s, 'spillway_store_circuit_state', { name: 'redis', state: 'closed' })).toBe(1);
    expect(value(s, 'spillway_store_circuit_state', { name: 'redis', state: 'open' })).toBe(0);
  });
});

describe('createMetrics: registration and options', () => {
  it('registers on the registry it is given and never on the global one', async () => {
    const before = (await globalRegistry.metrics()).length;
    const { registry } = metrics();
    expect(registry.getSingleMetric('spillway_factor')).toBeDefined();
    expect(globalRegistry.getSingleMetric('spillway_factor')).toBeUndefined();
    expect((await globalRegistry.metrics()).length).toBe(before);
  });

  it('puts every name under the prefix, in Prometheus form, with HELP and TYPE', async () => {
    const registry = new Registry();
    const m = createMetrics({ registry, prefix: 'app_shed_' });
    opened.push(m);
    const text = await registry.metrics();
    const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1]!, x[2]!]);
    expect(names.length).toBeGreaterThan(20);
    for (const [name, type] of names) {
      expect(name).toMatch(/^app_shed_[a-z_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_seconds$/);
      expect(text).toContain(`# HELP ${name} `);
    }
  });

  it('refuses a second set with the same prefix on one registry, and bad options, with a ConfigError', () => {
    const { registry } = metrics();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ registry }, /`prefix`.*spillway_factor exists/],
      [{ registry: {} }, /`registry`/],
      [{ registry: new Registry(), prefix: '9x' }, /`prefix`/],
      [{ registry: new Registry(), maxRoutes: -1 }, /`maxRoutes`/],
      [{ registry: new Registry(), queueWaitBuckets: [1, 0.5] }, /`queueWaitBuckets\[1\]`/],
      [{ registry: new Registry(), channels: 'yes' }, /`channels`/],
      [{ registry: new Registry(), registery: 1 }, /registery/],
    ];
    for (const [options, message] of bad) {
      let error: unknown;
      try {
        opened.push(createMetrics(options as never));
      } catch (e) {
        error = e;
      }
      expect(isConfigError(error), JSON.stringify(Object.keys(options))).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
    const { m } = metrics();
    expect(() => m.observeLimiter({} as never)).toThrow(/`limiter`/);
    expect(() => m.observeGovernor({} as never)).toThrow(/`governor`/);
    expect(() => m.observeLimiter({ inFlight: 1 }, { name: '' })).toThrow(/`name`/);
  });
});
