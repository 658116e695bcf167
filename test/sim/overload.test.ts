/**
 * The simulator's proofs on overload: the real Governor, Shedder and keyed limiter on the model
 * server. Numbers are stated with how they were measured (seed 1 unless said otherwise).
 */
import { describe, expect, it } from 'vitest';
import { loadScenario, parseScenario, type Scenario } from '../../simulations/src/scenario.js';
import type { SimReport, SimSummary } from '../../simulations/src/report.js';
import { simulate } from '../../simulations/src/simulate.js';

const dir = 'simulations/scenarios';

describe('step to 3x capacity (step-3x.json: 250 → 1,500 → 250 req/s, capacity 500 req/s, 30–90 s)', () => {
  it('with library defaults: engages within 2 s, holds p99 under 2 s, recovers within 10 s, keeps at least 90% goodput', async () => {
    const sc = await loadScenario(`${dir}/step-3x.json`);
    const s = simulate(sc, { mode: 'spillway' }).summary;
    const ep = s.episodes[0]!;
    expect(s.episodes).toHaveLength(1);
    expect([ep.startSec, ep.endSec]).toEqual([30, 90]);
    // Engages when the smoothed event-loop-delay pressure crosses 0.5: τ = 2 s puts that at ~1.5 s.
    expect(ep.engageMs!).toBeLessThanOrEqual(2000);
    // The worst second is the backlog built before engaging (~1.5 s of queue at 1,000 extra req/s;
    // measured 1,108 ms, before 1,548 ms: the first cut is a full 20% once every reading of the last
    // second was at the limit, so the backlog drains faster).
    expect(ep.p99Ms!).toBeLessThan(2000);
    expect(ep.recoverMs!).toBeLessThanOrEqual(10_000);
    // Measured: 93.6% (91.1% before the probe followed the pressure; before the defaults changed: 81.5%).
    expect(ep.goodputShare).toBeGreaterThan(0.9);
    // Without protection the same step is a collapse: work for clients that gave up.
    const none = simulate(sc, { mode: 'none' }).summary;
    expect(none.episodes[0]!.goodputShare).toBeLessThan(0.3);
    expect(none.late).toBeGreaterThan(40_000);
  });

  // The target, with library defaults. Measured, seeds 1–5, with the probe steered by the pressure:
  // goodput 93.2–93.6%, settled p99 57–85 ms (without the brake the probe walked the limit past the
  // throughput ~45 s after the factor returned to 1: seed 3 read 121 ms in the step's last second).
  // Before that: goodput 90.9–91.5% (the ceiling is
  // ~95%: 1,000 refusals/s at 0.05 ms each take 5% of the loop); engaged after 1.55–1.57 s; 2
  // switches; one correction ~10–15 s into the step (the first base is the throughput before any
  // refusal, which refusals then lower), after which the factor stays put (last change at 46.1–49.9
  // s) and the worst second's p99 from 20 s after the step to its end is 44–83 ms (the limit sits 5%
  // under the measured throughput, the bucket holds 50 ms). Before the defaults changed: 81.5%, 6
  // switches, 4 factor on/off switches, the worst settled second ~1.2–1.3 s.
  it.each([1, 2, 3, 4, 5])(
    'with library defaults (seed %i): >= 90% goodput, <= 2 switches, engaged within 2 s, settled within 20 s with p99 under 100 ms',
    async (seed) => {
      const sc = await loadScenario(`${dir}/step-3x.json`);
      const r = simulate(sc, { mode: 'spillway', seed });
      const ep = r.summary.episodes[0]!;
      expect(ep.goodputShare).toBeGreaterThanOrEqual(0.9);
      expect(ep.switches).toBeLessThanOrEqual(2);
      expect(ep.engageMs!).toBeLessThanOrEqual(2000);
      const settled = r.series.slice(ep.startSec + 20, ep.endSec);
      expect(Math.max(...settled.map((p) => p.p99Ms ?? Number.POSITIVE_INFINITY))).toBeLessThan(100);
      // Settled means settled: no factor change in the last 40 s of the step (no limit cycle).
      const late = r.factorChanges.filter(
        (c) => c.atMs >= (ep.startSec + 20) * 1000 && c.atMs < ep.endSec * 1000,
      );
      expect(late).toEqual([]);
      // Cuts fast, recovers once: at most 3 reversals of the factor in the whole run.
      expect(r.summary.factorDirectionChangesPerMin! * (r.summary.durationSec / 60)).toBeLessThanOrEqual(3);
    },
  );

  it.each([1, 2, 3])(
    'tuned (step-3x-tuned.json, seed %i): engages within 1 s, >= 92% goodput, p99 under 1.5 s, 2 switches',
    async (seed) => {
      const sc = await loadScenario(`${dir}/step-3x-tuned.json`);
      const ep = simulate(sc, { mode: 'spillway', seed }).summary.episodes[0]!;
      expect(ep.engageMs!).toBeLessThanOrEqual(1000);
      // Measured, seeds 1–5: 93.1, 93.1, 93.0, 93.2, 93.1% (before the Shedder's rebase: ~90%). The
      // ceiling is ~95%: 1,000 refusals/s at 0.05 ms each take 5% of the loop.
      expect(ep.goodputShare).toBeGreaterThanOrEqual(0.92);
      expect(ep.p99Ms!).toBeLessThan(1500);
      expect(ep.switches).toBeLessThanOrEqual(2);
      expect(ep.recoverMs!).toBeLessThanOrEqual(5000);
    },
  );
});

describe("step to 3x with the guard's default pipeline (step-3x.json with the loop-turn budget on)", () => {
  // Live (NOTES.md, 2 ms handler, 3x for 20 s): 98% goodput, p99 32 ms, the factor never moved: the
  // budget did everything, and its 503s waited longer than its 2xx (p50 42 ms against 28 ms).
  const withBudget = async () => {
    const sc = await loadScenario(`${dir}/step-3x.json`);
    return { ...sc, spillway: { ...sc.spillway, turnBudgetMs: undefined } };
  };

  it('the budget carries the overload: goodput >= 94%, the worst p99 under 50 ms, the factor at 1', async () => {
    const r = simulate(await withBudget(), { mode: 'spillway' });
    const ep = r.summary.episodes[0]!;
    // Measured: 94.7% (the ceiling is ~95%: a refusal costs 0.05 ms of loop), worst second 46.4 ms
    // (48.8 ms with refuseEarly false).
    expect(ep.goodputShare).toBeGreaterThan(0.94);
    expect(ep.p99Ms!).toBeLessThan(50);
    expect(ep.switches).toBeLessThanOrEqual(2);
    // As live: each turn stays near 25 ms, so the event-loop delay never reaches the governor's target.
    expect(r.summary.minFactor).toBe(1);
  });

  it('refusing early answers 503s sooner and admits the newest: both medians fall', async () => {
    const sc = await withBudget();
    const early = simulate(sc, { mode: 'spillway' }).summary;
    const tail = simulate(sc, { mode: 'spillway', turnBudget: { refuseEarly: false } }).summary;
    // The tail rule reproduces the live gap: 2xx p50 29.6 ms, 503 p50 36.2 ms (live 28 and 42).
    expect(tail.refusedLatencyMs!.p50!).toBeGreaterThan(tail.latencyMs.p50!);
    // Refusing at the head of each turn: 2xx p50 8.9 ms, 503 p50 21.9 ms (measured, seed 1).
    expect(early.latencyMs.p50!).toBeLessThan(tail.latencyMs.p50! / 2);
    expect(early.refusedLatencyMs!.p50!).toBeLessThan(tail.refusedLatencyMs!.p50! - 10);
    // Not "no slower than admissions": the head of a turn holds its oldest requests, which already
    // waited most of the previous turn before the loop reached them; see the report.
    expect(early.refusedLatencyMs!.p50!).toBeGreaterThan(early.latencyMs.p50!);
    // Served and refused as many: the same goodput either way (within 1%).
    expect(Math.abs(early.goodput - tail.goodput) / tail.goodput).toBeLessThan(0.01);
  });
});

describe('retry storm (a spike to 2x for 30 s; refused clients retry up to 5 attempts, 50 ms apart)', () => {
  const run = async (file: string) => {
    const sc = await loadScenario(`${dir}/${file}`);
    return simulate(sc, { mode: 'spillway' });
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  it('honouring Retry-After settles: offered load back near the base, factor back at 1', async () => {
    const r = await run('retry-storm.json');
    const base = 300;
    // The storm outlives the spike (retries wait Retry-After, 1 or 2 s, up to 4 times), then settles.
    const after = r.series.filter((p) => p.t >= 95 && p.t < 120);
    expect(mean(after.map((p) => p.offered))).toBeLessThan(base * 1.1);
    expect(after.every((p) => p.shed === 0)).toBe(true);
    expect(r.series.at(-1)!.factor).toBe(1);
    expect(r.summary.episodes[0]!.recoverMs!).toBeLessThanOrEqual(35_000);
  });

  it('ignoring Retry-After is worse for the clients: more load offered during the spike, fewer of their requests served', async () => {
    const honour = await run('retry-storm.json');
    const ignore = await run('retry-storm-ignore-retry-after.json');
    const spike = (r: typeof honour) => mean(r.series.slice(30, 60).map((p) => p.offered));
    // Measured, seeds 1–3, with Retry-After spread uniformly over whole seconds (1 or 2 s for a 1 s
    // base): mean offered load in the spike 3,550–3,585 vs 3,996–4,007 req/s; share of demand
    // served 69.8–70.1% vs 68.2–68.7%. (While the jitter rounded every 1 s base up to 2 s, the
    // honouring clients stayed away longer: 3,363–3,375 req/s in the spike, and a gap above 1.5
    // points.) Goodput of the episode (retries included) does not differ much: a refusal is decided
    // cheaply and the Shedder's limit sits near the throughput either way.
    expect(spike(ignore)).toBeGreaterThan(spike(honour) * 1.1);
    expect(ignore.summary.goodputShareOfDemand).toBeLessThan(honour.summary.goodputShareOfDemand - 0.01);
  });
});

describe('retry budget', () => {
  it('bounds retries to the budget: at most 10 + ratio · first attempts', async () => {
    const base = await loadScenario(`${dir}/retry-storm-ignore-retry-after.json`);
    const t = base.traffic[0]!;
    const sc: Scenario = { ...base, traffic: [{ ...t, retry: { ...t.retry!, budgetRatio: 0.1 } }] };
    const unbounded = simulate(base, { mode: 'spillway' }).summary;
    const bounded = simulate(sc, { mode: 'spillway' }).summary;
    expect(bounded.retries).toBeGreaterThan(0);
    expect(bounded.retries).toBeLessThanOrEqual(10 + 0.1 * bounded.firstAttempts);
    expect(unbounded.retries).toBeGreaterThan(bounded.firstAttempts);
    // Fewer refusals to answer leaves more loop time for real work.
    expect(bounded.episodes[0]!.goodputShare).toBeGreaterThan(unbounded.episodes[0]!.goodputShare);
  });
});

describe("fairness across tenants (Jain's index of goodput / max-min fair share)", () => {
  it('is 1 for equal tenants', () => {
    const sc = parseScenario(
      {
        name: 'equal',
        durationSec: 60,
        traffic: [{ name: 't', tenant: 't', tenants: 5, pattern: 'steady', ratePerSec: 50 }],
      },
      'equal',
    );
    const s = simulate(sc, { mode: 'spillway' }).summary;
    expect(s.tenants).toHaveLength(5);
    expect(s.jainIndex!).toBeGreaterThan(0.999);
  });

  it('is low for an abusive tenant without protection, and near 1 with per-tenant limits', async () => {
    const sc = await loadScenario(`${dir}/abusive-tenant.json`);
    const none = simulate(sc, { mode: 'none' }).summary;
    const withQuota = simulate(sc, { mode: 'spillway' }).summary;
    const noQuota: Scenario = { ...sc, spillway: { ...sc.spillway, perTenant: undefined } };
    const shedderOnly = simulate(noQuota, { mode: 'spillway' }).summary;
    // Polite tenants: fair share = their demand (20/s); the abuser's fair share is 300/s of 1,500.
    // Served in proportion to demand, J = (10 + r)² / (11 (10 + r²)) with r = 1500/300 = 5: 0.58.
    expect(none.jainIndex!).toBeLessThan(0.65);
    expect(shedderOnly.jainIndex!).toBeLessThan(0.65);
    // With a 250/s quota per tenant, polite tenants are served in full and the abuser gets 250 of 300.
    expect(withQuota.jainIndex!).toBeGreaterThan(0.99);
    // 450 req/s admitted is 90% of capacity: the governor still sheds now and then, from everyone
    // alike (the turn budget, which shares refusals by key, is off in this scenario). Measured: the
    // least-served polite tenant got 94.0% of its demand (min factor 0.89; seeds 2 and 3: 99.3% and
    // 90.5%). It read 78% when this bound was lowered to 0.75 (right after the Shedder learned from
    // completions); measured again after the governor's later changes, it is back at 94%.
    const polite = withQuota.tenants.filter((t) => t.tenant.startsWith('polite'));
    for (const t of polite) expect(t.goodput / t.demand).toBeGreaterThan(0.9);
    expect(withQuota.goodputShareOfCapacity).toBeGreaterThan(0.8);
  });
});

describe('priorities', () => {
  it('sheds sheddable work first and critical work least', async () => {
    const sc = await loadScenario(`${dir}/priority-mix.json`);
    const s = simulate(sc, { mode: 'spillway' }).summary;
    const by = s.shedShareByPriority;
    expect(by.sheddable!).toBeGreaterThan(by.normal! + 0.05);
    expect(by.normal!).toBeGreaterThan(by.critical! + 0.05);
  });
});

describe('tenants of different rates at 2.25x, each within its quota (tenants-3x.json)', () => {
  const share = (s: SimSummary, tenant: string) => {
    const t = s.tenants.find((x) => x.tenant === tenant)!;
    return t.overloadGoodput! / t.overloadSent!;
  };
  const refusedFrom = (r: SimReport, t: number) =>
    r.series.filter((p) => p.t >= t).reduce((a, p) => a + p.shed + p.limited, 0);

  it('the light tenants keep >= 95% of what they send while the heavy one is cut; without protection all lose alike', async () => {
    const sc = await loadScenario(`${dir}/tenants-3x.json`);
    const none = simulate(sc, { mode: 'none' }).summary;
    // Unprotected: everyone gets ~27% of what they sent, and late (p99 17 s).
    for (const t of ['heavy', 'light', 'lighter']) expect(share(none, t)).toBeLessThan(0.35);

    const fed = simulate(sc, { mode: 'spillway' });
    const unfed = simulate(
      { ...sc, spillway: { ...sc.spillway, feedGovernor: false } },
      { mode: 'spillway' },
    );
    for (const r of [fed, unfed]) {
      const s = r.summary;
      // Measured (seed 1): light 95.8%, lighter 95.0% (fed); 97.0%, 96.9% (not fed); heavy 29-30%.
      // Fed, the factor holds the load near the edge, where turns overrun now and then rather than
      // in a row: what the light tenants lose is the tail of those turns past LIGHT_GRACE.
      expect(share(s, 'light')).toBeGreaterThan(0.95);
      expect(share(s, 'lighter')).toBeGreaterThan(0.95);
      expect(share(s, 'heavy')).toBeLessThan(0.35);
      expect(s.episodes[0]!.switches).toBeLessThanOrEqual(2);
      // Nothing refused from 2 s after the load fell (the step ends at 40 s).
      expect(refusedFrom(r, 42)).toBe(0);
    }
    // Fed, the factor moves (measured: down to 0.34, above the edge at 0.275, where the quotas admit
    // the capacity) and the heavy tenant's quota shrinks; not fed, it stays at 1 and the turn budget
    // alone refuses the heavy tenant.
    expect(fed.summary.minFactor!).toBeLessThan(0.5);
    expect(unfed.summary.minFactor).toBe(1);
    // The refusals wait no longer than the admissions during the overload (the heavy tenant's
    // refusals are spread over each turn): measured p50 29.3 against 29.4 ms (fed), 30.4 against
    // 30.4 ms (not fed).
    for (const r of [fed, unfed]) {
      const ep = r.summary.episodes[0]!;
      expect(ep.refusedP50Ms!).toBeLessThanOrEqual(ep.p50Ms!);
    }
    // Goodput and p99 (issue 10 asks >= 98% and <= 35 ms): measured 96.7% / 96.8% of capacity (fed
    // / not; seeds 2 and 3 the same), p99 of the worst second 49.5 / 46.3 ms. Fed was 93.3-94.0%
    // before the turn budget's refusals spent the quota: the factor then went under the edge
    // (governor-feed.ts). Missed in the model: each refusal costs 0.05 ms of loop here (~3.5% of
    // it at 700 refusals/s), and the model's turns run longer than live ones (the single-tenant
    // step to 3x has the same 46 ms). Stated, not asserted as passing marks.
    expect(unfed.summary.episodes[0]!.goodputShare).toBeGreaterThan(0.95);
    expect(fed.summary.episodes[0]!.goodputShare).toBeGreaterThan(0.95);
    expect(fed.summary.episodes[0]!.p99Ms!).toBeLessThan(50);
  });

  it('at 0.8x of capacity: nothing refused but a Poisson burst now and then', async () => {
    const sc = await loadScenario(`${dir}/tenants-3x.json`);
    const scale = 0.8 / 2.25;
    const light: Scenario = {
      ...sc,
      traffic: sc.traffic.map((t) =>
        t.pattern.kind === 'step'
          ? { ...t, pattern: { ...t.pattern, peakPerSec: t.pattern.peakPerSec * scale } }
          : t,
      ),
    };
    const r = simulate(light, { mode: 'spillway' });
    // Measured: 4 refusals of ~13,000 requests (in seconds 28 and 31), by the turn budget on turns
    // that a burst of Poisson arrivals ran past 25 ms; the same 4 with every tenant on one key (the
    // uniform rule), so not the fair sharing's doing. Issue 10 asks for none: missed by 0.03%.
    expect(refusedFrom(r, 0)).toBeLessThanOrEqual(0.001 * r.summary.offered);
    expect(r.summary.minFactor).toBe(1);
  });
});
