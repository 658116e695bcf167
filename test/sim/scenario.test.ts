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
