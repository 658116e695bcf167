/**
 * simulations/scenarios/pool-bound-governed.json: the pool-bound server behind a guard that feeds
 * its Governor, with a concurrency stage of limit 8 that follows the governor's factor (the
 * spillway-governed mode of bench/live-pool.mjs). Issue 10's pool-bound proof on virtual time: the
 * factor settles without reaching the floor, and within 2 s of the load falling nothing is refused;
 * issue 9's targets hold with the factor in the loop (goodput >= 95% of capacity, p99 <= 150 ms at
 * 3x, <= 2 on/off switches, no refusal at 0.8x).
 */
import { describe, expect, it } from 'vitest';
import { poolPhaseScenario, simulatePoolPhases } from '../../simulations/src/pool-phases.js';
import { loadScenario } from '../../simulations/src/scenario.js';
import { simulateAsync } from '../../simulations/src/simulate.js';

const load = () => loadScenario('simulations/scenarios/pool-bound-governed.json');

describe('pool-bound, governed: the fed factor and a concurrency stage that follows it', () => {
  it('the step 0.5x -> 3x -> 0.5x: the factor stays off the floor, the pool stays full, nothing refused 2 s after the fall', async () => {
    const base = await load();
    expect(base.spillway.feedGovernor).toBe(true);
    const step = await simulateAsync(poolPhaseScenario(base, 'step'), { mode: 'spillway' });
    expect(step.summary.minFactor).not.toBeNull();
    expect(step.summary.minFactor!).toBeGreaterThan(0.05);
    const ep = step.summary.episodes[0]!;
    expect(ep.goodputShare).toBeGreaterThanOrEqual(0.95);
    expect(ep.lastRefusalAfterEndMs ?? 0).toBeLessThanOrEqual(2000);
    // No refusal in the last 8 s (the seconds from 2 s after the fall on).
    for (const p of step.series.filter((s) => s.t >= 22)) expect(p.shed + p.limited).toBe(0);
  });

  it("issue 9's three phases meet their targets with the factor in the loop", async () => {
    const phases = await simulatePoolPhases(await load());
    expect(phases.overload.goodputShare!).toBeGreaterThanOrEqual(0.95);
    expect(phases.overload.overloadP99Ms!).toBeLessThanOrEqual(150);
    expect(phases.overload.switches).toBeLessThanOrEqual(2);
    expect(phases.step.goodputShare!).toBeGreaterThanOrEqual(0.95);
    expect(phases.step.lastRefusalAfterFallMs ?? 0).toBeLessThanOrEqual(2000);
    expect(phases.below.refused).toBe(0);
  });
});
