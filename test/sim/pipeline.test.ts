/**
 * "One pipeline, everywhere": the simulator's `spillway` mode runs the stages the HTTP guard runs,
 * built by the same function (`admissionPipeline`) from the same options, and charging stays
 * all-or-nothing across those real stages, the waiting concurrency stage and aborts included.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter, createLimiter, ManualClock, ManualFactor, Shedder } from 'spillway';
import { admissionPipeline, type Pipeline, TurnBudget } from 'spillway/pipeline';
import { createGuard } from '../../src/adapters/core.js';
import { createProtection } from '../../simulations/src/protection.js';
import { parseScenario } from '../../simulations/src/scenario.js';

/** What a stage is, as far as the pipeline's rules go. */
function shape(p: { readonly stages: Pipeline['stages'] }) {
  return p.stages.map((s) => ({
    name: s.name,
    waits: s.waits,
    quota: s.quota,
    peek: s.peek !== undefined,
    refund: s.refund !== undefined,
    release: s.release !== undefined,
  }));
}

function simScenario(spillway: Record<string, unknown>) {
  return parseScenario(
    { name: 'same', durationSec: 1, traffic: [{ pattern: 'steady', ratePerSec: 1 }], spillway },
    'same',
  );
}

function simProtection(spillway: Record<string, unknown>) {
  const clock = new ManualClock(0);
  const idle = { name: 'idle', unit: 'count', target: 1, limit: 2, sample: () => 0 };
  return createProtection('spillway', simScenario(spillway), { clock, govClock: clock, defer: () => {} }, [
    idle,
  ]);
}

describe('the simulator and the HTTP guard build the same pipeline for the same options', () => {
  const quota = { ratePerSec: 50, burst: 25 };
  const cases: { perTenant: boolean; turnBudgetMs: number | false | undefined }[] = [];
  for (const perTenant of [false, true])
    for (const turnBudgetMs of [undefined, false, 10] as const) cases.push({ perTenant, turnBudgetMs });

  it.each(cases)('quota per key: $perTenant, turnBudgetMs: $turnBudgetMs', ({ perTenant, turnBudgetMs }) => {
    const sim = simProtection({
      ...(perTenant ? { perTenant: quota } : {}),
      ...(turnBudgetMs === undefined ? {} : { turnBudgetMs }),
    });
    const shedder = new Shedder({ factor: new ManualFactor(1) });
    const limiter = perTenant ? createLimiter(quota) : undefined;
    const guard = createGuard({
      shedder,
      ...(limiter ? { limiter } : {}),
      ...(turnBudgetMs === undefined ? {} : { turnBudgetMs }),
    });
    expect(shape(sim.pipeline)).toEqual(shape(guard.pipeline));
    expect(sim.turn?.budgetMs).toBe(guard.turnBudget?.budgetMs);
    // The defaults are the guard's: with a shedder and no option, the budget is on at 25 ms.
    if (turnBudgetMs === undefined) expect(sim.turn?.budgetMs).toBe(25);
    const names = shape(sim.pipeline).map((s) => s.name);
    expect(names).toEqual([
      ...(perTenant ? ['key'] : []),
      ...(turnBudgetMs === false ? [] : ['turn-budget']),
      'shedder',
    ]);
    sim.stop();
    shedder.close();
    limiter?.close();
  });

  it('without a Shedder (`shedder: false`): the guard with no shedder, the budget only when asked for', () => {
    for (const turnBudgetMs of [undefined, 25] as const) {
      const sim = simProtection({
        perTenant: { ...quota, scaled: true },
        shedder: false,
        ...(turnBudgetMs === undefined ? {} : { turnBudgetMs }),
      });
      const limiter = createLimiter(quota);
      const guard = createGuard({ limiter, ...(turnBudgetMs === undefined ? {} : { turnBudgetMs }) });
      expect(shape(sim.pipeline)).toEqual(shape(guard.pipeline));
      expect(shape(sim.pipeline).map((s) => s.name)).toEqual(
        turnBudgetMs === undefined ? ['key'] : ['key', 'turn-budget'],
      );
      sim.stop();
      guard.close();
      limiter.close();
    }
  });

  it("feedGovernor: the simulated governor gets the guard's refusal share, fed by the same class", () => {
    const fed = simProtection({ perTenant: quota, shedder: false, turnBudgetMs: 25, feedGovernor: true });
    expect(Object.keys(fed.governor.snapshot().signals)).toEqual(['idle', 'http-refusal-share']);
    fed.stop();
    expect(Object.keys(fed.governor.snapshot().signals)).toEqual(['idle']);
    const unfed = simProtection({ perTenant: quota });
    expect(Object.keys(unfed.governor.snapshot().signals)).toEqual(['idle']);
    unfed.stop();
  });

  it('with a concurrency stage: the same stages as the guard with `concurrency`, last, waiting and releasing', () => {
    const sim = simProtection({ perTenant: quota, concurrency: { limit: 8 } });
    const shedder = new Shedder({ factor: new ManualFactor(1) });
    const limiter = createLimiter(quota);
    const guard = createGuard({ shedder, limiter, concurrency: { limit: 8 } });
    expect(shape(sim.pipeline)).toEqual(shape(guard.pipeline));
    expect(shape(sim.pipeline).map((s) => s.name)).toEqual(['key', 'turn-budget', 'shedder', 'concurrency']);
    expect(sim.pipeline.waits).toBe(true);
    expect(sim.pipeline.releases).toBe(true);
    expect(sim.concurrency?.limit).toBe(guard.concurrency?.limit);
    // The limit is fixed, as the guard's options make it; `scaled: true` makes it follow the
    // governor, as `factor: governor` does in the guard.
    expect(sim.concurrency?.options.factor).toBe(1);
    expect(guard.concurrency?.options.factor).toBe(1);
    const scaled = simProtection({ perTenant: quota, concurrency: { limit: 8, scaled: true } });
    expect(scaled.concurrency?.options.factor).toBe(scaled.governor);
    scaled.stop();
    expect(() => simProtection({ concurrency: { limit: 8, scaled: 'yes' } })).toThrow(/spillway\.concurrency\.scaled/);
    // And what admissionPipeline builds from the same parts is the same again.
    const clock = new ManualClock(0);
    const same = admissionPipeline({
      limiter: createLimiter({ ...quota, clock }),
      turn: new TurnBudget({ clock, defer: () => {} }),
      shedder: new Shedder({ factor: new ManualFactor(1), clock }),
      concurrency: new ConcurrencyLimiter({ limit: 8, clock }),
    });
    expect(shape(same)).toEqual(shape(sim.pipeline));
    sim.stop();
    guard.close();
    shedder.close();
    limiter.close();
  });
});

describe('charging stays all-or-nothing across the real stages (fast-check)', () => {
  type Op =
    | { kind: 'send'; key: number; cost: number; priority: 'critical' | 'normal' | 'sheddable' }
    | { kind: 'advance'; ms: number }
    | { kind: 'endTurn' }
    | { kind: 'finish'; pick: number }
    | { kind: 'abort'; pick: number }
    | { kind: 'spend'; on: boolean };

  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('send' as const),
        key: fc.integer({ min: 0, max: 2 }),
        cost: fc.integer({ min: 1, max: 3 }),
        priority: fc.constantFrom('critical' as const, 'normal' as const, 'sheddable' as const),
      }),
    },
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40 }) }),
    fc.constant({ kind: 'endTurn' as const }),
    fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('abort' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('spend' as const), on: fc.boolean() }),
  );

  it('every key is charged exactly the cost of its admitted requests, of those waiting in the queue and of those refused by a stage that spendsQuota (rule 5a); every slot is held by an admitted, unfinished request', async () => {
    // What the runs went through, so that the property cannot pass by never reaching a path.
    const seen = {
      refusedBy: new Set<string>(),
      waitedThenAdmitted: 0,
      waitedThenRefused: 0,
      aborted: 0,
      spent: 0,
    };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 80 }), async (ops) => {
        const clock = new ManualClock(0);
        let ends: (() => void)[] = [];
        const burst = 4;
        const limiter = createLimiter({ ratePerSec: 1e-9, burst, clock });
        const concurrency = new ConcurrencyLimiter({ limit: 4, maxQueue: 3, maxWaitMs: 30, clock });
        const shedder = new Shedder({ factor: new ManualFactor(1), clock });
        const turn = new TurnBudget({ budgetMs: 10, clock, defer: (f) => ends.push(f) });
        const pipeline = admissionPipeline({ limiter, turn, shedder, concurrency });
        // The in-memory key limiter is charged in its place and refunded on a later refusal.
        expect(pipeline.stages[0]!.name).toBe('key');
        expect(pipeline.stages[0]!.peek).toBeUndefined();
        expect(pipeline.stages[0]!.refund).toBeDefined();
        const charged = [0, 0, 0];
        // Cost of the requests waiting in the concurrency stage: their key holds it meanwhile.
        const reserved = [0, 0, 0];
        const running: { key: number; cost: number; req: object }[] = [];
        const waiting: AbortController[] = [];
        let settled = 0;
        let sent = 0;
        for (const o of ops) {
          if (o.kind === 'send') {
            const ac = new AbortController();
            const req = { key: `k${o.key}`, cost: o.cost, priority: o.priority, signal: ac.signal };
            sent++;
            // Rule 5a: a refusal by a stage that spendsQuota (as the guard's feed sets it) keeps the
            // key charged; read when the request is run, as the pipeline does.
            const spends = turn.spendsQuota;
            const admitted = (v: { allowed: boolean; stage?: { name: string } }) => {
              settled++;
              if (!v.allowed) {
                seen.refusedBy.add(v.stage!.name);
                if (v.stage!.name === 'turn-budget' && spends) {
                  seen.spent++;
                  charged[o.key]! += o.cost;
                }
                return;
              }
              charged[o.key]! += o.cost;
              running.push({ key: o.key, cost: o.cost, req });
            };
            const v = pipeline.run(req);
            if (v instanceof Promise) {
              waiting.push(ac);
              reserved[o.key]! += o.cost;
              v.then(
                (r) => {
                  reserved[o.key]! -= o.cost;
                  if (r.allowed) seen.waitedThenAdmitted++;
                  else seen.waitedThenRefused++;
                  admitted(r);
                },
                () => {
                  reserved[o.key]! -= o.cost;
                  seen.aborted++;
                  settled++;
                },
              );
            } else admitted(v);
          } else if (o.kind === 'advance') clock.advance(o.ms);
          else if (o.kind === 'endTurn') {
            const e = ends;
            ends = [];
            for (const f of e) f();
          } else if (o.kind === 'finish' && running.length > 0) {
            const [r] = running.splice(o.pick % running.length, 1);
            pipeline.release(r!.req as never);
          } else if (o.kind === 'abort' && waiting.length > 0) {
            waiting.splice(o.pick % waiting.length, 1)[0]!.abort();
          } else if (o.kind === 'spend') turn.spendsQuota = o.on;
          await Promise.resolve();
          await new Promise((r) => setImmediate(r));
          // The key limiter holds exactly what admitted requests cost, with those still waiting and
          // those whose refusal spent the quota (no refill: 1e-9 per second).
          for (let k = 0; k < 3; k++) {
            // (Critical work sees the whole bucket: lower priorities keep a reserve for it.)
            // A peek's `remaining` is what admitting it would leave.
            const d = limiter.peek(`k${k}`, { cost: 1, priority: 'critical' });
            const left = d.allowed ? d.remaining + 1 : d.remaining;
            expect(burst - left).toBeCloseTo(charged[k]! + reserved[k]!, 6);
          }
          // Slots (one unit per unit of cost) are held by admitted requests not yet finished, no more.
          expect(concurrency.inFlight).toBe(running.reduce((n, r) => n + r.cost, 0));
        }
        // Nothing is lost: close the queue, and every request has an answer.
        concurrency.close();
        await new Promise((r) => setImmediate(r));
        expect(settled).toBe(sent);
        for (const r of running.splice(0)) pipeline.release(r.req as never);
        expect(concurrency.inFlight).toBe(0);
        shedder.close();
        limiter.close();
      }),
      {
        numRuns: 150,
        // A refusal that spends the quota needs `spend` on, then a turn run past its budget: random
        // runs reach it in most sets of 150, not all (1 in 12 missed it), so one run always does.
        examples: [
          [
            [
              { kind: 'spend', on: true },
              { kind: 'send', key: 0, cost: 1, priority: 'normal' },
              { kind: 'advance', ms: 11 },
              { kind: 'send', key: 0, cost: 1, priority: 'normal' },
            ],
          ],
        ],
      },
    );
    // (The Shedder at factor 1 refuses nothing here; it has no refund, and is asked before the queue.)
    expect([...seen.refusedBy].sort()).toEqual(['concurrency', 'key', 'turn-budget']);
    expect(seen.waitedThenAdmitted).toBeGreaterThan(0);
    expect(seen.waitedThenRefused).toBeGreaterThan(0);
    expect(seen.aborted).toBeGreaterThan(0);
    expect(seen.spent).toBeGreaterThan(0);
  });
});
