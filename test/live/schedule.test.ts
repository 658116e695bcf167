import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../simulations/src/live/histogram.js';
import { sliceSwitches } from '../../simulations/src/live/live.js';
import { buildSchedule, PRIORITY_ORDER, peakPerSecond } from '../../simulations/src/live/schedule.js';
import { parseScenario } from '../../simulations/src/scenario.js';

const scenario = (traffic: unknown[], durationSec = 10) => parseScenario({ name: 't', durationSec, traffic });

describe('buildSchedule', () => {
  it('spaces uniform arrivals exactly 1/rate apart', () => {
    const s = scenario([{ pattern: 'steady', ratePerSec: 200, arrivals: 'uniform' }], 2);
    const sch = buildSchedule(s.traffic, { durationSec: 2 });
    expect(sch.atMs.length).toBe(400);
    expect(sch.atMs[0]).toBe(0);
    for (let i = 1; i < sch.atMs.length; i++) expect(sch.atMs[i]! - sch.atMs[i - 1]!).toBeCloseTo(5, 9);
  });

  it('follows a step and a scale: base, peak, base', () => {
    const s = scenario(
      [
        {
          pattern: 'step',
          basePerSec: 100,
          peakPerSec: 300,
          stepStartSec: 2,
          stepEndSec: 4,
          arrivals: 'uniform',
        },
      ],
      6,
    );
    const sch = buildSchedule(s.traffic, { durationSec: 6, scale: 2 });
    const perSecond = [0, 0, 0, 0, 0, 0];
    for (const at of sch.atMs) perSecond[Math.floor(at / 1000)]!++;
    expect(perSecond).toEqual([200, 200, 600, 600, 200, 200]);
    expect(peakPerSecond(sch)).toBe(600);
  });

  it('draws Poisson arrivals near the rate, reproducibly from the seed', () => {
    const s = scenario([{ pattern: 'steady', ratePerSec: 1000 }], 10);
    const a = buildSchedule(s.traffic, { durationSec: 10, seed: 7 });
    const b = buildSchedule(s.traffic, { durationSec: 10, seed: 7 });
    expect(a.atMs).toEqual(b.atMs);
    // 10,000 expected; a Poisson count's sd is 100.
    expect(Math.abs(a.atMs.length - 10_000)).toBeLessThan(500);
    for (let i = 1; i < a.atMs.length; i++) expect(a.atMs[i]!).toBeGreaterThanOrEqual(a.atMs[i - 1]!);
  });

  it('merges sources in time order and draws priorities by share', () => {
    const s = scenario(
      [
        { name: 'a', pattern: 'steady', ratePerSec: 100, arrivals: 'uniform', priorities: { critical: 1 } },
        { name: 'b', pattern: 'steady', ratePerSec: 50, arrivals: 'uniform', priorities: { sheddable: 1 } },
      ],
      2,
    );
    const sch = buildSchedule(s.traffic, { durationSec: 2 });
    expect(sch.atMs.length).toBe(300);
    for (let i = 0; i < sch.atMs.length; i++) {
      expect(PRIORITY_ORDER[sch.priority[i]!]).toBe(sch.source[i] === 0 ? 'critical' : 'sheddable');
    }
  });
});

describe('LatencyHistogram', () => {
  it('reports any percentile within 1% above the exact value', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.02, max: 60_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
        fc.integer({ min: 1, max: 100 }),
        (values, p) => {
          const h = new LatencyHistogram();
          for (const v of values) h.record(v);
          const sorted = [...values].sort((a, b) => a - b);
          const exact = sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
          const got = h.percentile(p);
          expect(got).toBeGreaterThanOrEqual(exact * (1 - 1e-9));
          expect(got).toBeLessThanOrEqual(exact * 1.01 + 1e-9);
        },
      ),
    );
  });

  it('merges as if every value had been recorded in one', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    const all = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) {
      (i % 2 ? a : b).record(i);
      all.record(i);
    }
    const merged = LatencyHistogram.from(a.toJSON());
    merged.merge(b.toJSON());
    expect(merged.count).toBe(100);
    expect(merged.maxMs).toBe(100);
    expect(merged.percentile(50)).toBe(all.percentile(50));
    expect(merged.percentile(99)).toBe(all.percentile(99));
  });

  it('is NaN when empty', () => {
    expect(new LatencyHistogram().percentile(99)).toBeNaN();
  });
});

describe('sliceSwitches', () => {
  it('counts on and off transitions inside the window', () => {
    const f = (s: string) => [...s].map((c) => c === '#');
    expect(sliceSwitches(f('...####...'), 0, 10)).toBe(2);
    expect(sliceSwitches(f('..#.#.#...'), 0, 10)).toBe(6);
    expect(sliceSwitches(f('##########'), 0, 10)).toBe(1);
    // The state just before the window counts as where it starts from.
    expect(sliceSwitches(f('#####.....'), 3, 10)).toBe(1);
    expect(sliceSwitches(f('..........'), 0, 10)).toBe(0);
  });
});
