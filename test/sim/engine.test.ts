import { describe, expect, it } from 'vitest';
import { ManualClock } from 'spillway';
import { parseScenario } from '../../simulations/src/scenario.js';
import { EventLoop, loopClock } from '../../simulations/src/server.js';
import { simulate } from '../../simulations/src/simulate.js';

describe('EventLoop', () => {
  it('runs items one at a time in FIFO order and measures their waits', () => {
    const clock = new ManualClock(0);
    const loop = new EventLoop(clock);
    const log: string[] = [];
    const waits: number[] = [];
    loop.onWait((w) => waits.push(w));
    const item = (name: string, cost: number) => ({
      enqueuedAt: clock.now(),
      start: () => {
        log.push(`${name}@${clock.now()}`);
        return cost;
      },
    });
    loop.enqueue(item('a', 10));
    loop.enqueue(item('b', 5));
    clock.advance(3);
    loop.enqueue(item('c', 1));
    clock.advance(100);
    expect(log).toEqual(['a@0', 'b@10', 'c@15']);
    expect(waits).toEqual([0, 10, 12]);
    expect(loop.busyMs(clock.now())).toBe(16);
  });

  it('runs a due timer at the next item boundary, ahead of queued work, and counts its cost', () => {
    const clock = new ManualClock(0);
    const loop = new EventLoop(clock);
    const lc = loopClock(clock, loop, 2);
    const log: string[] = [];
    const work = (name: string, cost: number) => ({
      enqueuedAt: clock.now(),
      start: () => {
        log.push(`${name}@${clock.now()}`);
        return cost;
      },
    });
    loop.enqueue(work('long', 50));
    loop.enqueue(work('next', 1));
    lc.setTimeout(() => log.push(`timer@${clock.now()}`), 20);
    const cancelled = lc.setTimeout(() => log.push('never'), 30);
    cancelled.cancel();
    clock.advance(200);
    // The timer was due at 20 but the loop was busy until 50: 30 ms late, then costs 2 ms.
    expect(log).toEqual(['long@0', 'timer@50', 'next@52']);
    expect(loop.oldestWaitMs(clock.now())).toBe(0);
  });
});

/** A single open-loop Poisson source on an unprotected server: an M/G/1 queue. */
function queueScenario(service: object, ratePerSec: number, durationSec: number) {
  return parseScenario(
    {
      name: 'mg1',
      durationSec,
      seed: 3,
      server: { service, tickCostMs: 0 },
      traffic: [{ pattern: 'steady', ratePerSec, timeoutMs: 1e9 }],
    },
    'mg1',
  );
}

// Each case simulates 30 minutes of traffic (about 600,000 requests) to pin the mean within a few
// percent: seconds of CPU, more on a busy machine.
describe('the model server is a correct queue', { timeout: 90_000 }, () => {
  it('M/D/1: at ρ = 0.8 the mean wait is ρ·S / (2(1 − ρ)) = 4 ms within 3%', () => {
    // S = 2 ms constant, λ = 400/s: ρ = 0.8, Wq = 0.8 · 2 / (2 · 0.2) = 4 ms. Latency = Wq + S.
    const r = simulate(queueScenario({ kind: 'constant', ms: 2 }, 400, 1800), { mode: 'none' });
    const wait = r.summary.latencyMs.mean! - 2;
    expect(Math.abs(wait - 4) / 4).toBeLessThan(0.03);
  });

  it('M/M/1: at ρ = 0.7 the mean wait is ρ·S / (1 − ρ) ≈ 4.67 ms within 4%', () => {
    // S = 2 ms exponential, λ = 350/s: ρ = 0.7, Wq = 0.7 · 2 / 0.3 = 4.667 ms; mean service 2 ms.
    const r = simulate(queueScenario({ kind: 'exponential', meanMs: 2 }, 350, 1800), { mode: 'none' });
    const wait = r.summary.latencyMs.mean! - 2;
    expect(Math.abs(wait - 14 / 3) / (14 / 3)).toBeLessThan(0.04);
  });

  it('M/G/1 (lognormal, cv 1.5): Pollaczek–Khinchine λ·E[S²] / (2(1 − ρ)) within 10%', () => {
    // E[S²] = mean² (1 + cv²) = 4 · 3.25 = 13 ms²; λ = 0.3/ms: Wq = 0.3 · 13 / (2 · 0.4) = 4.875 ms.
    const r = simulate(queueScenario({ kind: 'lognormal', meanMs: 2, cv: 1.5 }, 300, 1800), { mode: 'none' });
    const wait = r.summary.latencyMs.mean! - 2;
    expect(Math.abs(wait - 4.875) / 4.875).toBeLessThan(0.1);
  });
});

describe('simulate', () => {
  const steady = parseScenario(
    {
      name: 'steady',
      durationSec: 60,
      server: { service: { kind: 'exponential', meanMs: 2 } },
      traffic: [{ pattern: 'steady', ratePerSec: 300 }],
    },
    'steady',
  );

  // The governor and the Shedder alone (turnBudgetMs: false). With the guard's default pipeline the
  // loop-turn budget also acts; see the next test.
  const shedderOnly = { ...steady, spillway: { ...steady.spillway, turnBudgetMs: false as const } };

  it('a constant load under capacity sheds nothing under the governor and Shedder: goodput = offered', () => {
    const r = simulate(shedderOnly, { mode: 'spillway' });
    const s = r.summary;
    expect(s.shed).toBe(0);
    expect(s.limited).toBe(0);
    expect(s.late).toBe(0);
    expect(s.minFactor).toBe(1);
    // Every request was answered in time but those still in flight when the run stopped.
    expect(s.goodput + s.unfinished).toBe(s.offered);
    expect(s.unfinished).toBeLessThan(10);
    expect(s.offeredPerSec).toBeGreaterThan(290);
    expect(s.offeredPerSec).toBeLessThan(310);
    expect(r.series).toHaveLength(60);
    expect(r.series.reduce((a, p) => a + p.offered, 0)).toBe(s.offered);
  });

  it("with the guard's default pipeline, the turn budget refuses only turns that overrun: none with constant service, a few bursts with exponential", () => {
    // At 300 req/s of 2 ms exponential work (ρ = 0.6), a queue of ~13 requests (25 ms of work) now
    // and then lands in one turn, and the budget refuses its tail, as it would in Node. Measured:
    // 11 of 17,890 (0.06%); the same with refuseEarly false (a single overrun carries nothing).
    const s = simulate(steady, { mode: 'spillway' }).summary;
    expect(s.shed).toBeGreaterThan(0);
    expect(s.shed / s.offered).toBeLessThan(0.001);
    expect(s.minFactor).toBe(1);
    const constant = {
      ...steady,
      server: { ...steady.server, service: { kind: 'constant' as const, ms: 2 } },
    };
    expect(simulate(constant, { mode: 'spillway' }).summary.shed).toBe(0);
  });

  it('is deterministic: same seed, same report (but wall time)', () => {
    const strip = (r: ReturnType<typeof simulate>) => ({ ...r, summary: { ...r.summary, wallMs: 0 } });
    const a = strip(simulate(steady, { mode: 'spillway', seed: 9 }));
    const b = strip(simulate(steady, { mode: 'spillway', seed: 9 }));
    const c = strip(simulate(steady, { mode: 'spillway', seed: 10 }));
    expect(a).toEqual(b);
    expect(c.summary.offered).not.toBe(a.summary.offered);
  });

  it('without protection an overload grows the queue and turns work into late answers', () => {
    const over = parseScenario(
      {
        name: 'over',
        durationSec: 60,
        server: { service: { kind: 'constant', ms: 2 } },
        traffic: [{ pattern: 'steady', ratePerSec: 750, timeoutMs: 5000 }],
      },
      'over',
    );
    const s = simulate(over, { mode: 'none' }).summary;
    // 1.5x capacity: the server completes 500/s in arrival order, so the request answered at time t
    // arrived at 2t/3 and waited t/3: 5 s (the timeout) at t = 15 s, 20 s at the end (t = 60 s).
    // Goodput is then the 15 s before the timeout is crossed: 15 · 500 / (60 · 500) = 25% of capacity.
    expect(s.late).toBeGreaterThan(20_000);
    expect(s.goodputShareOfCapacity).toBeGreaterThan(0.23);
    expect(s.goodputShareOfCapacity).toBeLessThan(0.27);
    expect(s.latencyMs.max!).toBeGreaterThan(19_000);
    expect(s.latencyMs.max!).toBeLessThan(20_500);
  });

  it('refusals cost loop time: static mode at a low rate still shows the refusal work', () => {
    const sc = parseScenario(
      {
        name: 'refusals',
        durationSec: 30,
        server: { service: { kind: 'constant', ms: 2 }, refusalCostMs: 1, tickCostMs: 0 },
        traffic: [{ pattern: 'steady', ratePerSec: 600, arrivals: 'uniform' }],
        static: { ratePerSec: 100, burst: 1 },
      },
      'refusals',
    );
    const s = simulate(sc, { mode: 'static' }).summary;
    // 100/s admitted at 2 ms + 500/s refused at 1 ms = 700 ms of loop per second: no queue, and
    // the refused share is exactly what the bucket refuses.
    expect(s.admitted / 30).toBeCloseTo(100, -1);
    expect(s.limitedShare).toBeGreaterThan(0.8);
    expect(s.latencyMs.p99!).toBeLessThan(5);
  });
});
