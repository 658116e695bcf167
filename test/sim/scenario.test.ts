import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isConfigError } from 'spillway';
import {
  loadScenario,
  modelCapacity,
  parseScenario,
  rateAt,
  SCENARIO_BOUNDS,
  ScenarioError,
} from '../../simulations/src/scenario.js';

const minimal = {
  name: 'x',
  durationSec: 10,
  traffic: [{ pattern: 'steady', ratePerSec: 100 }],
};

function errorOf(obj: unknown, source = 'simulations/scenarios/x.json'): ScenarioError {
  try {
    parseScenario(obj, source);
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioError);
    expect(isConfigError(err)).toBe(true);
    return err as ScenarioError;
  }
  throw new Error('expected parseScenario to throw');
}

describe('scenario validation', () => {
  it('names the file and the field', () => {
    const err = errorOf({ ...minimal, traffic: [{ pattern: 'steady', ratePerSec: -3 }] });
    expect(err.message).toBe(
      'simulations/scenarios/x.json: traffic[0].ratePerSec must be a finite number > 0, got -3',
    );
    expect(err.field).toBe('traffic[0].ratePerSec');
    expect(err.source).toBe('simulations/scenarios/x.json');
  });

  it.each([
    [{ ...minimal, durationSec: 'long' }, 'durationSec must be a finite number > 0', '"long"'],
    [{ ...minimal, name: undefined }, 'name must be a non-empty string', 'nothing'],
    [{ ...minimal, traffic: [] }, 'traffic must be a non-empty array', '[]'],
    [{ ...minimal, traffic: [{ pattern: 'wave' }] }, 'traffic[0].pattern must be one of "steady"', '"wave"'],
    [
      { ...minimal, traffic: [{ pattern: 'steady', ratePerSec: 1, rate: 2 }] },
      'traffic[0].rate must be absent',
      '2',
    ],
    [
      {
        ...minimal,
        traffic: [{ pattern: 'steady', ratePerSec: 1, priorities: { critical: 0.5, normal: 0.2 } }],
      },
      'traffic[0].priorities must be shares that add up to 1',
      '',
    ],
    [
      { ...minimal, traffic: [{ pattern: 'steady', ratePerSec: 1, retry: { maxAttempts: 0 } }] },
      'traffic[0].retry.maxAttempts must be an integer >= 1',
      '0',
    ],
    [
      { ...minimal, server: { service: { kind: 'pareto', meanMs: 2, alpha: 1 } } },
      'server.service.alpha must be a finite number > 1',
      '1',
    ],
    [
      { ...minimal, signals: [{ kind: 'poolWaiting', target: 1, limit: 2 }] },
      'signals[0].kind must be a kind other than "poolWaiting"',
      '',
    ],
    [
      { ...minimal, signals: [{ kind: 'cpu', target: 0.9, limit: 0.5 }] },
      'signals[0].limit must be a finite number > 0.9',
      '0.5',
    ],
    [
      { ...minimal, modes: ['none', 'magic'] },
      'modes[1] must be one of "none", "static", "spillway"',
      '"magic"',
    ],
    [{ ...minimal, spillway: { governor: { clock: 1 } } }, 'spillway.governor.clock must be absent', '1'],
    [{ ...minimal, colour: 'red' }, 'colour must be absent (unknown field', '"red"'],
    [
      { ...minimal, spillway: { feedGovernor: 'yes' } },
      'spillway.feedGovernor must be true or false',
      '"yes"',
    ],
    [
      { ...minimal, spillway: { perTenant: { ratePerSec: 5, scaled: 1 } } },
      'spillway.perTenant.scaled must be true or false',
      '1',
    ],
    [{ ...minimal, spillway: { shedder: true } }, 'spillway.shedder must be an object', 'true'],
  ])('rejects %#', (obj, text, got) => {
    const err = errorOf(obj);
    expect(err.message).toContain(`simulations/scenarios/x.json: ${text}`);
    expect(err.message).toContain(`got ${got}`);
  });

  it('fills in defaults', () => {
    const s = parseScenario(minimal, 'x');
    expect(s.seed).toBe(1);
    expect(s.modes).toEqual(['none', 'static', 'spillway']);
    expect(s.server.service).toEqual({ kind: 'exponential', meanMs: 2 });
    expect(s.capacityPerSec).toBe(500);
    expect(s.static.ratePerSec).toBe(450);
    expect(s.traffic[0]!.timeoutMs).toBe(10_000);
    expect(s.traffic[0]!.priorities).toEqual({ critical: 0, normal: 1, sheddable: 0 });
    expect(s.signals.map((x) => x.kind)).toEqual(['eventLoopDelay', 'memory']);
    expect(s.spillway.feedGovernor).toBe(false);
    expect(s.spillway.shedder).toEqual({});
    const quota = parseScenario({ ...minimal, spillway: { perTenant: { ratePerSec: 10 } } }, 'x');
    expect(quota.spillway.perTenant).toEqual({ ratePerSec: 10, burst: 5, scaled: false });
  });

  it('computes capacity from the loop and the pool, whichever is lower', () => {
    const s = parseScenario(
      {
        ...minimal,
        server: {
          service: { kind: 'constant', ms: 1 },
          downstream: {
            concurrency: 4,
            service: { kind: 'constant', ms: 20 },
            maxQueue: 10,
            share: 0.5,
            callbackCostMs: 0,
          },
        },
      },
      'x',
    );
    // loop: 1000 / 1 = 1000/s; pool: 4 · 1000 / (20 · 0.5) = 400/s.
    expect(modelCapacity(s.server)).toBe(400);
  });

  it('traffic patterns give the rates they describe', () => {
    expect(rateAt({ kind: 'step', basePerSec: 1, peakPerSec: 3, startSec: 10, endSec: 20 }, 15)).toBe(3);
    expect(rateAt({ kind: 'step', basePerSec: 1, peakPerSec: 3, startSec: 10, endSec: 20 }, 20)).toBe(1);
    expect(rateAt({ kind: 'ramp', fromPerSec: 0, toPerSec: 100, startSec: 0, endSec: 10 }, 2.5)).toBe(25);
    expect(
      rateAt({ kind: 'sinusoid', meanPerSec: 10, amplitudePerSec: 5, periodSec: 4, phaseSec: 0 }, 1),
    ).toBe(15);
    const onOff = { kind: 'onOff', onPerSec: 9, offPerSec: 1, onSec: 2, offSec: 3, phaseSec: 1 } as const;
    expect([0.5, 1, 2.9, 3, 5.9, 6].map((t) => rateAt(onOff, t))).toEqual([1, 9, 9, 1, 1, 9]);
  });

  it('loadScenario names the file for bad JSON and for a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spillway-sim-'));
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{ "name": ');
    await expect(loadScenario(bad)).rejects.toThrow(`${bad}: the file is not valid JSON`);
    await expect(loadScenario(join(dir, 'nope.json'))).rejects.toThrow(
      `${join(dir, 'nope.json')}: (file) must be a readable file`,
    );
    const wrong = join(dir, 'wrong.json');
    await writeFile(wrong, JSON.stringify({ ...minimal, durationSec: 0 }));
    await expect(loadScenario(wrong)).rejects.toThrow(
      `${wrong}: durationSec must be a finite number > 0 and <= 604800, got 0`,
    );
  });

  it('every shipped scenario file is valid', async () => {
    const dir = 'simulations/scenarios';
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) {
      const s = await loadScenario(join(dir, f));
      expect(s.name).toBe(f.replace(/\.json$/, ''));
    }
  });
});

/** A value nested `depth` levels deep, built as JSON text (as a file holds it) and parsed. */
function nested(depth: number, open = '{"a":', close = '}'): unknown {
  return JSON.parse(`${open.repeat(depth)}1${close.repeat(depth)}`);
}

describe('scenario bounds: refused up front, naming the field and the bound', () => {
  it('refuses a source whose requests would exceed maxRequests, at once', () => {
    const started = performance.now();
    const err = errorOf({
      ...minimal,
      durationSec: 60,
      traffic: [{ pattern: 'step', basePerSec: 100, peakPerSec: 1e6, stepStartSec: 10, stepEndSec: 50 }],
    });
    expect(err.field).toBe('traffic[0]');
    expect(err.message).toContain('5,000,000 requests');
    expect(err.message).toContain('got "40,002,000 requests"');
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('counts retries (maxAttempts) and every source together', () => {
    const source = { pattern: 'steady', ratePerSec: 20_000 };
    // 20,000/s for 100 s is 2,000,000: within the bound alone, over it with three attempts or three sources.
    expect(() => parseScenario({ ...minimal, durationSec: 100, traffic: [source] })).not.toThrow();
    expect(
      errorOf({ ...minimal, durationSec: 100, traffic: [{ ...source, retry: { maxAttempts: 3 } }] }).field,
    ).toBe('traffic[0]');
    const three = [1, 2, 3].map((i) => ({ ...source, name: `s${i}` }));
    expect(errorOf({ ...minimal, durationSec: 100, traffic: three }).field).toBe('traffic[2]');
  });

  it('refuses more than maxTenants tenants over all sources', () => {
    const err = errorOf({ ...minimal, traffic: [{ pattern: 'steady', ratePerSec: 1e-6, tenants: 1e8 }] });
    expect(err.field).toBe('traffic[0].tenants');
    expect(err.message).toContain('at most 10,000 tenants');
    const two = [
      { name: 'a', pattern: 'steady', ratePerSec: 0.001, tenants: 6_000 },
      { name: 'b', pattern: 'steady', ratePerSec: 0.001, tenants: 6_000 },
    ];
    expect(errorOf({ ...minimal, traffic: two }).field).toBe('traffic[1].tenants');
    expect(() =>
      parseScenario({
        ...minimal,
        traffic: [{ pattern: 'steady', ratePerSec: 0.001, tenants: SCENARIO_BOUNDS.maxTenants }],
      }),
    ).not.toThrow();
  });

  it('a value nested 100,000 deep is a clear ScenarioError, not a stack overflow (objects and arrays)', () => {
    const cases: ReadonlyArray<[unknown, string]> = [
      [
        { ...minimal, traffic: [{ pattern: 'steady', ratePerSec: 1, retry: nested(100_000) }] },
        'traffic[0].retry.a.a',
      ],
      [{ ...minimal, name: nested(100_000, '[', ']') }, 'name[0][0]'],
      [nested(100_000, '[', ']'), '[0][0]'],
    ];
    for (const [input, field] of cases) {
      const err = errorOf(input);
      expect(err.field.startsWith(field)).toBe(true);
      expect(err.field.length).toBeLessThanOrEqual(120);
      expect(err.message).toContain(`nested at most ${SCENARIO_BOUNDS.maxDepth} levels deep`);
      expect(err.message.length).toBeLessThan(400);
    }
  });

  it('a file nested 100,000 deep gets the same error from loadScenario', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spillway-deep-'));
    const path = join(dir, 'deep.json');
    await writeFile(path, `{"name":${'['.repeat(100_000)}${']'.repeat(100_000)},"durationSec":10}`);
    const err = await loadScenario(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ScenarioError);
    expect((err as ScenarioError).message).toContain(`${path}: name[0]`);
  });

  it('every shipped scenario is within the bounds', async () => {
    const dir = join(import.meta.dirname, '../../simulations/scenarios');
    for (const f of await readdir(dir)) await expect(loadScenario(join(dir, f))).resolves.toBeDefined();
  });

  it('a wrong value is printed briefly however large or deep it is', () => {
    for (const name of [
      ['x'.repeat(10_000)],
      nested(20, '[', ']'),
      Array.from({ length: 1e5 }, (_, i) => i),
    ]) {
      const err = errorOf({ ...minimal, name });
      expect(err.message).toMatch(/name must be a non-empty string, got .{1,80}$/);
    }
  });
});
