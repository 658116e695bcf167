/**
 * A pool-bound service in the simulator (pool-bound.json: 0.3 ms of CPU, then one of 8 slots held
 * 20 ms, capacity 400 req/s; issue 9's live server) with the concurrency stage of the guard's
 * pipeline (limit 8, CoDel and adaptive LIFO at their defaults). Seed 1.
 */
import { describe, expect, it } from 'vitest';
import { loadScenario, type Scenario } from '../../simulations/src/scenario.js';
import { simulate, simulateAsync } from '../../simulations/src/simulate.js';

const load = () => loadScenario('simulations/scenarios/pool-bound.json');

describe('pool-bound service with the concurrency stage', () => {
  it('0.5x -> 3x -> 0.5x: queue time stays bounded, the excess is refused, and refusals stop when the load falls', async () => {
    const sc = await load();
    const r = await simulateAsync(sc, { mode: 'spillway' });
    const ep = r.summary.episodes[0]!;
    expect([ep.startSec, ep.endSec]).toEqual([10, 20]);
    // Measured: 98.1% of capacity served during the 3x step (the pool is never idle for long).
    expect(ep.goodputShare).toBeGreaterThan(0.95);
    // Admitted requests wait at most a few CoDel targets for a slot: the worst second's p99 was
    // 93 ms (the first second, while the queue built for an interval before it stood), 34 ms
    // over the whole step (20 ms of service; issue 9's target is 150 ms), against 2.5 s without.
    expect(ep.p99Ms!).toBeLessThan(150);
    expect(ep.p99AllMs!).toBeLessThan(50);
    // Refusals are steady: on once the queue stands, off once after the step, in 100 ms slices
    // too (issue 9: <= 2 on/off switches); the last one within 100 ms of the fall.
    expect(ep.switches100Ms).toBe(2);
    expect(ep.lastRefusalAfterEndMs!).toBeLessThanOrEqual(200);
    const step = r.series.slice(10, 20);
    expect(step.every((p) => p.shed > p.offered * 0.5)).toBe(true);
    // Within a second of the load falling, no refusals and p99 back near the service time.
    const after = r.series.slice(21);
    expect(after.every((p) => p.shed === 0)).toBe(true);
    expect(Math.max(...after.map((p) => p.p99Ms ?? Number.POSITIVE_INFINITY))).toBeLessThan(40);
    expect(r.summary.late).toBe(0);
    expect(r.summary.unfinished).toBeLessThan(20);

    const none = (await simulateAsync(sc, { mode: 'none' })).summary;
    // Without protection the same step queues for seconds at the pool (and its queue overflows).
    expect(none.episodes[0]!.p99Ms!).toBeGreaterThan(2000);
    expect(none.failed).toBeGreaterThan(1000);
  }, 120_000);

  it('0.8x of capacity: almost nothing refused, p99 near the service time', async () => {
    const sc = await load();
    const t = sc.traffic[0]!;
    const low: Scenario = { ...sc, traffic: [{ ...t, pattern: { kind: 'steady', ratePerSec: 320 } }] };
    const s = (await simulateAsync(low, { mode: 'spillway' })).summary;
    // Measured: 61 of 9,746 refused (0.63%), p99 42 ms. Not the zero issue 9 asks for: with Poisson
    // arrivals at ρ = 0.8 the 8 slots build short queues, and CoDel (5 ms target, 100 ms interval)
    // refuses waiters of a queue that stood for 100 ms. A bound, not a pass mark: see the report.
    expect(s.shed / s.offered).toBeLessThan(0.01);
    expect(s.latencyMs.p99!).toBeLessThan(60);
    expect(s.late).toBe(0);
  }, 120_000);

  it('simulate (synchronous) refuses a scenario whose pipeline waits, naming simulateAsync', async () => {
    const sc = await load();
    expect(() => simulate(sc, { mode: 'spillway' })).toThrow(/simulateAsync/);
  });
});
