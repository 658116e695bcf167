/**
 * The pool-bound scenario's simulated figures beside a live run's (bench/live-pool.mjs), within the
 * tolerance docs/pool.md states (POOL_SIM_TOLERANCE). Deterministic: the simulator runs here, the
 * live figures are recorded medians (LIVE, with where and when they were measured), never measured
 * by the test. A fresh live run prints the same comparison (bench/live-pool.mjs).
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  comparePoolPhases,
  POOL_SIM_TOLERANCE,
  type PoolPhases,
  simulatePoolPhases,
} from '../../simulations/src/pool-phases.js';
import { loadScenario } from '../../simulations/src/scenario.js';

const load = () => loadScenario('simulations/scenarios/pool-bound.json');

/**
 * Live medians of 3 runs of `node bench/live-pool.mjs --runs 3 --time-scale 0.5` on a quiet machine
 * (2026-12-01 04:27 UTC, load average 1.0, capacity measured ~394 req/s; docs/pool.md › Benchmark).
 * That run predates the CoDel fix that made refusals steady (on/off switches were 11 and 5 at 3×,
 * 4 and 4 in the step): its switch counts do not describe the code under test and are left out;
 * the fix changes neither admission below capacity nor the figures compared here by more than the
 * tolerance on virtual time (goodput 96.5% → 98.1% in the step). NaN: not recorded (and not
 * compared). `offered` is the schedule's count at the measured capacity (3 × 394/s × 10 s, ...).
 */
const LIVE_QUIET_0_5: Record<'known' | 'adaptive', PoolPhases> = {
  known: {
    overload: {
      goodputShare: 0.963,
      overloadP99Ms: 113,
      switches: Number.NaN,
      refused: 7743,
      offered: 11_820,
    },
    step: {
      goodputShare: 0.972,
      overloadP99Ms: 103,
      switches: Number.NaN,
      lastRefusalAfterFallMs: 100,
      refused: Number.NaN,
      offered: 7880,
    },
    below: { switches: 0, refused: 0, offered: 3152 },
  },
  adaptive: {
    overload: {
      goodputShare: 0.993,
      overloadP99Ms: 131,
      switches: Number.NaN,
      refused: 7595,
      offered: 11_820,
    },
    step: {
      goodputShare: 0.989,
      overloadP99Ms: 129,
      switches: Number.NaN,
      lastRefusalAfterFallMs: 100,
      refused: Number.NaN,
      offered: 7880,
    },
    below: { switches: 0, refused: 0, offered: 3152 },
  },
};

/**
 * Live medians of 3 full-length runs after the CoDel fix: `node bench/live-pool.mjs --runs 3
 * --time-scale 1` (fifo backend, all seven modes side by side), 2026-12-01 08:46-09:18 UTC, commit
 * 603f9f3, capacity measured 387-392 req/s; other work on the machine ran at SCHED_IDLE (load
 * average 0.9 at the end), the first run while it was only niced (docs/pool.md › Benchmark).
 */
const LIVE_MEDIANS_1: Record<'known' | 'adaptive', PoolPhases> = {
  known: {
    overload: { goodputShare: 0.988, overloadP99Ms: 36, switches: 1, refused: 15_740, offered: 23_480 },
    step: {
      goodputShare: 0.981,
      overloadP99Ms: 38.6,
      switches: 2,
      lastRefusalAfterFallMs: 100,
      refused: 7897,
      offered: 15_654,
    },
    below: { switches: 0, refused: 0, offered: 6261 },
  },
  adaptive: {
    overload: { goodputShare: 1.003, overloadP99Ms: 57.5, switches: 1, refused: 15_614, offered: 23_480 },
    step: {
      goodputShare: 1.007,
      overloadP99Ms: 57.5,
      switches: 2,
      lastRefusalAfterFallMs: 100,
      refused: 7789,
      offered: 15_654,
    },
    below: { switches: 0, refused: 0, offered: 6261 },
  },
};

describe('pool-bound: the simulator against recorded live figures', () => {
  it.each([
    ['known', { limit: 8 }],
    ['adaptive', {}],
  ] as const)(
    '%s limit, time scale 1, quiet medians after the CoDel fix: every figure within POOL_SIM_TOLERANCE, switches too',
    async (name, concurrency) => {
      const sim = await simulatePoolPhases(await load(), { timeScale: 1, concurrency });
      const cmp = comparePoolPhases(sim, LIVE_MEDIANS_1[name]);
      expect(cmp).toHaveLength(9);
      expect(cmp.filter((c) => !c.within)).toEqual([]);
    },
    60_000,
  );

  it.each([
    ['known', { limit: 8 }],
    ['adaptive', {}],
  ] as const)(
    '%s limit, time scale 0.5: every recorded figure within POOL_SIM_TOLERANCE',
    async (name, concurrency) => {
      const sim = await simulatePoolPhases(await load(), { timeScale: 0.5, concurrency });
      const cmp = comparePoolPhases(sim, LIVE_QUIET_0_5[name]).filter(
        (c) => !(c.figure === 'switches' && c.phase !== 'below'),
      );
      expect(cmp).toHaveLength(7);
      expect(cmp.filter((c) => !c.within)).toEqual([]);
      // The simulator's own switch count, the figure the quiet live run cannot speak for: steady.
      expect([sim.overload.switches, sim.step.switches, sim.below.switches]).toEqual([2, 2, 0]);
      // Where the model is optimistic: no network, kernel or timer lateness, so its p99 is lower (by
      // 60-80 ms here), within the 100 ms tolerance but not by much.
      expect(sim.overload.overloadP99Ms!).toBeLessThan(LIVE_QUIET_0_5[name].overload.overloadP99Ms!);
    },
    60_000,
  );

  it('docs/pool.md states the tolerance the comparison uses', async () => {
    const doc = await readFile('docs/pool.md', 'utf8');
    const section = doc.slice(doc.indexOf('## Simulator and live run'));
    for (const [figure, value] of Object.entries(POOL_SIM_TOLERANCE)) {
      const unit = figure.endsWith('Ms') ? ' ms' : '';
      expect(section).toContain(`| \`${figure}\` | ${value}${unit}`);
    }
  });

  it('comparePoolPhases flags a figure outside its tolerance, and only that one', () => {
    const f: PoolPhases = {
      overload: { goodputShare: 0.97, overloadP99Ms: 40, switches: 2, refused: 8000, offered: 12_000 },
      step: {
        goodputShare: 0.97,
        overloadP99Ms: 60,
        switches: 2,
        lastRefusalAfterFallMs: 100,
        refused: 4000,
        offered: 8000,
      },
      below: { switches: 0, refused: 0, offered: 3200 },
    };
    const live: PoolPhases = { ...f, overload: { ...f.overload, goodputShare: 0.97 - 0.031 } };
    const out = comparePoolPhases(f, live);
    expect(out.filter((c) => !c.within).map((c) => `${c.phase}.${c.figure}`)).toEqual([
      'overload.goodputShare',
    ]);
    expect(comparePoolPhases(f, f).every((c) => c.within)).toBe(true);
  });
});
