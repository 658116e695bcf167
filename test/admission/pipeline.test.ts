import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Pipeline, type Verdict } from '../../src/admission/pipeline.js';
import type { AdmissionRequest, Stage } from '../../src/admission/stage.js';
import {
  type KeyAdmission,
  keyStage,
  type ProcessAdmission,
  shedderStage,
  turnBudgetStage,
} from '../../src/admission/stages.js';
import { TurnBudget } from '../../src/admission/turn-budget.js';
import { ManualClock } from '../../src/clock.js';
import { isAbortError } from '../../src/errors.js';
import { ADMITTED_UNLIMITED } from '../../src/limiters/decisions.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import type { Decision, Priority } from '../../src/limiters/types.js';

const REFUSED: Decision = Object.freeze({
  allowed: false,
  reason: 'shed',
  remaining: 0,
  limit: 1,
  retryAfterMs: 1000,
  resetMs: 0,
  factor: 1,
});

/** A stage with a counted budget of tokens: charges, refunds and releases are all visible. */
class Tokens implements Stage {
  readonly name = 'key' as const;
  readonly waits = false;
  readonly quota: boolean;
  charged = 0;
  released = 0;
  log: string[];
  constructor(
    public tokens: number,
    readonly tag: string,
    log: string[],
    opts: { quota?: boolean; refund?: boolean; peek?: boolean; release?: boolean } = {},
  ) {
    this.log = log;
    this.quota = opts.quota ?? false;
    if (opts.refund === false) this.refund = undefined;
    if (opts.peek === true) this.peek = (req) => this.#decide(req.cost, false);
    if (opts.release === true)
      this.release = () => {
        this.released++;
      };
  }
  #decide(cost: number, charge: boolean): Decision {
    if (cost > this.tokens) return { ...REFUSED, remaining: this.tokens };
    if (charge) {
      this.tokens -= cost;
      this.charged += cost;
    }
    return { ...ADMITTED_UNLIMITED, remaining: this.tokens, limit: 10 };
  }
  admit(req: AdmissionRequest): Decision {
    this.log.push(`${this.tag}.admit`);
    return this.#decide(req.cost, true);
  }
  peek?: (req: AdmissionRequest) => Decision;
  refund? = (req: AdmissionRequest): void => {
    this.log.push(`${this.tag}.refund`);
    this.tokens += req.cost;
    this.charged -= req.cost;
  };
  release?: (req: AdmissionRequest) => void;
}

const req = (cost = 1): AdmissionRequest => ({ key: 'k', priority: 'normal', cost });

describe('Pipeline', () => {
  it('asks stages in order and stops at the first refusal, refunding what was charged', () => {
    const log: string[] = [];
    const a = new Tokens(5, 'a', log);
    const b = new Tokens(5, 'b', log);
    const c = new Tokens(0, 'c', log);
    const v = new Pipeline([a, b, c]).runSync(req());
    expect(v).toMatchObject({ allowed: false, stage: c });
    expect(log).toEqual(['a.admit', 'b.admit', 'c.admit', 'b.refund', 'a.refund']);
    expect(a.tokens).toBe(5);
    expect(b.tokens).toBe(5);
  });

  it('charges a peekable stage last, only once every later stage admitted', () => {
    const log: string[] = [];
    const key = new Tokens(5, 'key', log, { peek: true, refund: false, quota: true });
    const shed = new Tokens(0, 'shed', log);
    const p = new Pipeline([key, shed]);
    const v = p.runSync(req());
    expect(v).toMatchObject({ allowed: false, stage: shed });
    expect(key.tokens).toBe(5);
    expect(log).toEqual(['shed.admit']);
    // The quota shown is the key's peeked decision: nothing was spent.
    expect(v.quota?.remaining).toBe(5);
    shed.tokens = 1;
    expect(p.runSync(req()).allowed).toBe(true);
    expect(log.slice(1)).toEqual(['shed.admit', 'key.admit']);
    expect(key.tokens).toBe(4);
  });

  it('a refused peek is confirmed by admit (the stage records its refusal) and later stages are not asked', () => {
    const log: string[] = [];
    const key = new Tokens(0, 'key', log, { peek: true, quota: true });
    const shed = new Tokens(5, 'shed', log);
    const v = new Pipeline([key, shed]).runSync(req());
    expect(v).toMatchObject({ allowed: false, stage: key });
    expect(log).toEqual(['key.admit']);
  });

  it('shows the quota with the refunded cost added back', () => {
    const log: string[] = [];
    const key = new Tokens(5, 'key', log, { quota: true });
    const v = new Pipeline([key, new Tokens(0, 'shed', log)]).runSync(req(2));
    expect(v.allowed).toBe(false);
    expect(v.quota?.remaining).toBe(5);
    expect(key.tokens).toBe(5);
  });

  it('release reaches only the stages that hold something; refund undoes an admitted request', () => {
    const log: string[] = [];
    const a = new Tokens(5, 'a', log, { release: true });
    const b = new Tokens(5, 'b', log);
    const p = new Pipeline([a, b]);
    expect(p.releases).toBe(true);
    expect(new Pipeline([b]).releases).toBe(false);
    expect(p.runSync(req()).allowed).toBe(true);
    p.release(req());
    expect(a.released).toBe(1);
    p.refund(req());
    expect(a.tokens).toBe(5);
    expect(b.tokens).toBe(5);
  });

  it('continues after a stage that waits, and refunds earlier stages when the wait is aborted', async () => {
    const log: string[] = [];
    const first = new Tokens(5, 'first', log);
    let resolve!: (d: Decision) => void;
    const queue: Stage = {
      name: 'concurrency',
      waits: true,
      quota: false,
      admit: (r) =>
        new Promise<Decision>((res, rej) => {
          resolve = res;
          r.signal?.addEventListener('abort', () => rej(r.signal?.reason));
        }),
    };
    const last = new Tokens(5, 'last', log);
    const p = new Pipeline([first, queue, last]);
    expect(p.waits).toBe(true);
    const r1 = p.run({ ...req(), signal: new AbortController().signal });
    expect(r1).toBeInstanceOf(Promise);
    resolve(ADMITTED_UNLIMITED);
    expect(await r1).toMatchObject({ allowed: true });
    expect(log).toEqual(['first.admit', 'last.admit']);

    const ac = new AbortController();
    const r2 = p.run({ ...req(), signal: ac.signal });
    ac.abort(new Error('gone'));
    await expect(r2).rejects.toThrow('gone');
    expect(first.tokens).toBe(4); // r1's charge kept, r2's refunded
    expect(last.tokens).toBe(4);
  });

  /** Stage specs for the properties: tokens, whether it peeks and refunds, whether its refusals spend. */
  const stageSpecs = (minLength: number) =>
    fc.array(
      fc.record({
        tokens: fc.integer({ min: 0, max: 6 }),
        peek: fc.boolean(),
        refund: fc.boolean(),
        spends: fc.boolean(),
      }),
      { minLength, maxLength: 5 },
    );
  const costLists = fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 20 });

  it('property: charging stays all-or-nothing across any stages and requests', () => {
    fc.assert(
      fc.property(stageSpecs(1), costLists, (specs, costs) => {
        const log: string[] = [];
        // A stage without refund must offer peek, or it could be charged for a refused request.
        const stages = specs.map(
          (s, i) => new Tokens(s.tokens, `s${i}`, log, { peek: s.peek || !s.refund, refund: s.refund }),
        );
        const p = new Pipeline(stages);
        let admittedCost = 0;
        for (const cost of costs) {
          const v = p.runSync(req(cost));
          if (v.allowed) admittedCost += cost;
        }
        // Every stage was charged exactly the cost of the admitted requests: nothing for a refusal.
        for (const s of stages) expect(s.charged).toBe(admittedCost);
      }),
    );
  });

  it('property: rule 5a, a refusal by a stage that spendsQuota leaves only the quota stage charged', () => {
    fc.assert(
      fc.property(stageSpecs(2), fc.nat(4), costLists, (specs, quotaAt, costs) => {
        const log: string[] = [];
        const q = quotaAt % specs.length;
        const stages = specs.map((s, i) => {
          const t = new Tokens(s.tokens, `s${i}`, log, {
            peek: s.peek || !s.refund,
            refund: s.refund,
            quota: i === q,
          });
          if (s.spends && i !== q) Object.defineProperty(t, 'spendsQuota', { value: true });
          return t;
        });
        const p = new Pipeline(stages);
        let admittedCost = 0;
        let spentCost = 0;
        for (const cost of costs) {
          const v = p.runSync(req(cost));
          if (v.allowed) admittedCost += cost;
          else if (v.stage.spendsQuota === true && stages.indexOf(v.stage as Tokens) > q) spentCost += cost;
        }
        // The quota stage pays for what was admitted and for what a spending stage after it
        // refused; every other stage only for what was admitted.
        for (const [i, st] of stages.entries()) {
          expect(st.charged).toBe(i === q ? admittedCost + spentCost : admittedCost);
        }
      }),
    );
  });
});

describe('stages over the real parts', () => {
  /**
   * A key limiter (1 token a second), a 10 ms turn budget and a Shedder on one ManualClock; `endTurn`
   * ends the current turn. The budget keeps the tail rule alone: with refuseEarly the next turn's
   * first request would be refused too.
   */
  function keyTurnShedder(burst: number) {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst, clock });
    let ender: () => void = () => {};
    const turn = new TurnBudget({ budgetMs: 10, clock, refuseEarly: false, defer: (f) => (ender = f) });
    const factor = new ManualFactor(1);
    const shedder = new Shedder({ factor, clock });
    const p = new Pipeline([keyStage(limiter), turnBudgetStage(turn), shedderStage(shedder)]);
    const close = () => {
      shedder.close();
      limiter.close();
    };
    return { clock, limiter, turn, factor, p, endTurn: () => ender(), close };
  }

  it('key, turn budget, shedder: a turn-budget refusal spends nothing of the key quota', () => {
    const { clock, limiter, p, endTurn, close } = keyTurnShedder(2);
    expect(p.runSync(req()).allowed).toBe(true);
    clock.advance(11);
    const v = p.runSync(req());
    expect(v).toMatchObject({ allowed: false, stage: { name: 'turn-budget' } });
    // 1 token left after the first request, 0.011 refilled; the key was charged, then refunded: the
    // quota shows what it holds after the refund.
    expect(v.quota?.remaining).toBeCloseTo(1.011, 9);
    endTurn();
    expect(limiter.peek('k', { cost: 1, priority: 'normal' }).remaining).toBeCloseTo(0.011, 9);
    expect(p.runSync(req()).allowed).toBe(true);
    close();
  });

  it("while the turn budget spendsQuota (the guard feeds a governor), its refusal spends the key quota; the shedder's still does not", () => {
    const { clock, limiter, turn, factor, p, endTurn, close } = keyTurnShedder(5);
    // A peek shows what an admission would leave: the tokens held, less 1.
    const held = () => limiter.peek('k').remaining + 1;
    turn.spendsQuota = true;
    expect(p.runSync(req()).allowed).toBe(true); // 4 tokens left
    clock.advance(11);
    const v = p.runSync(req());
    expect(v).toMatchObject({ allowed: false, stage: { name: 'turn-budget' } });
    // Charged: 4.011 − 1, and the quota shown says so.
    expect(v.quota?.remaining).toBeCloseTo(3.011, 9);
    expect(held()).toBeCloseTo(3.011, 9);
    endTurn();

    // Cleared, a turn-budget refusal spends nothing again.
    turn.spendsQuota = false;
    expect(p.runSync(req()).allowed).toBe(true); // 2.011
    clock.advance(11);
    const w = p.runSync(req());
    expect(w).toMatchObject({ allowed: false, stage: { name: 'turn-budget' } });
    expect(held()).toBeCloseTo(2.022, 9);
    endTurn();

    // The shedder's refusals never spend the quota, whatever the turn budget does.
    turn.spendsQuota = true;
    factor.set(0);
    const x = p.runSync(req());
    expect(x).toMatchObject({ allowed: false, stage: { name: 'shedder' } });
    expect(held()).toBeCloseTo(2.022, 9);
    endTurn();
    close();
  });

  it('a KeyedLimiter key stage decides as take(key, { cost, priority }) does, its short path for cost 1 at normal priority included', () => {
    const priorities = ['normal', 'critical', 'sheddable', 0.8] as const;
    const step = fc.record({
      key: fc.constantFrom('a', 'b', 'c'),
      cost: fc.constantFrom(1, 1, 2, 0.5),
      priority: fc.constantFrom(...priorities),
      advanceMs: fc.integer({ min: 0, max: 400 }),
      factor: fc.option(fc.constantFrom(1, 0.5, 0.2), { freq: 5 }),
    });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const clock = new ManualClock();
        const f1 = new ManualFactor(1);
        const f2 = new ManualFactor(1);
        const staged = createLimiter({ ratePerSec: 5, burst: 3, clock, factor: f1 });
        const direct = createLimiter({ ratePerSec: 5, burst: 3, clock, factor: f2 });
        const p = new Pipeline([keyStage(staged)]);
        for (const s of steps) {
          clock.advance(s.advanceMs);
          if (s.factor !== null) {
            f1.set(s.factor);
            f2.set(s.factor);
          }
          const v = p.runSync({ key: s.key, cost: s.cost, priority: s.priority });
          const d = direct.take(s.key, { cost: s.cost, priority: s.priority });
          expect(v.quota).toEqual(d);
        }
        for (const k of ['a', 'b', 'c']) {
          expect(staged.peek(k, { cost: 1, priority: 'normal' })).toEqual(
            direct.peek(k, { cost: 1, priority: 'normal' }),
          );
        }
        staged.close();
        direct.close();
      }),
    );
  });

  it('property: over a KeyedLimiter and a Shedder, the stages decide, charge, refund and release as they do over the general calls (their short paths: take(key), refund(key), the request as the Shedder options)', () => {
    const step = fc.oneof(
      {
        weight: 8,
        arbitrary: fc.record({
          kind: fc.constant('run' as const),
          key: fc.constantFrom('a', 'b', 'c'),
          cost: fc.constantFrom(1, 1, 1, 2, 0.5),
          priority: fc.constantFrom<Priority>('normal', 'normal', 'critical', 'sheddable', 0.8),
          advanceMs: fc.oneof(
            fc.constant(0),
            fc.integer({ min: 0, max: 30 }),
            fc.double({ min: 0, max: 400, noNaN: true }),
          ),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('factor' as const),
          factor: fc.constantFrom(1, 0.7, 0.3, 0.05, 0),
        }),
      },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('turn' as const) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), completed: fc.boolean() }) },
    );
    const config = fc.record({
      ratePerSec: fc.constantFrom(2, 5, 50),
      burst: fc.constantFrom(1, 3, 10),
      shedRate: fc.option(fc.constantFrom(3, 20), { nil: undefined }),
      refuseEarly: fc.boolean(),
    });
    fc.assert(
      fc.property(config, fc.array(step, { minLength: 1, maxLength: 120 }), (cfg, steps) => {
        const clock = new ManualClock();
        const factor = new ManualFactor(1);
        const build = (general: boolean) => {
          const limiter = createLimiter({ ratePerSec: cfg.ratePerSec, burst: cfg.burst, clock, factor });
          const shedder = new Shedder({
            factor,
            clock,
            ...(cfg.shedRate === undefined ? {} : { ratePerSec: cfg.shedRate }),
          });
          const ends: (() => void)[] = [];
          const turn = new TurnBudget({
            budgetMs: 10,
            clock,
            refuseEarly: cfg.refuseEarly,
            defer: (f) => ends.push(f),
          });
          // Plain objects, not instances: the stages then make the general calls with explicit options.
          const key: KeyAdmission = general
            ? { take: (k, o) => limiter.take(k, o), refund: (k, o) => limiter.refund(k, o) }
            : limiter;
          const process: ProcessAdmission = general
            ? {
                admit: (o) => shedder.admit({ cost: o.cost, priority: o.priority }),
                complete: (c) => shedder.complete(c),
              }
            : shedder;
          const pipeline = new Pipeline([keyStage(key), turnBudgetStage(turn), shedderStage(process)]);
          return { limiter, shedder, ends, pipeline };
        };
        const fast = build(false);
        const general = build(true);
        const admitted: AdmissionRequest[] = [];
        const seen = (v: Verdict) =>
          v.allowed ? v : { allowed: false, stage: v.stage.name, decision: v.decision, quota: v.quota };
        for (const s of steps) {
          if (s.kind === 'factor') factor.set(s.factor);
          else if (s.kind === 'turn') {
            for (const side of [fast, general]) for (const end of side.ends.splice(0)) end();
          } else if (s.kind === 'release') {
            const r = admitted.shift();
            if (r === undefined) continue;
            fast.pipeline.release(r, s.completed);
            general.pipeline.release(r, s.completed);
          } else {
            clock.advance(s.advanceMs);
            const r: AdmissionRequest = { key: s.key, cost: s.cost, priority: s.priority };
            // A cost over the burst throws (a ConfigError) on both sides alike.
            const run = (p: Pipeline) => {
              try {
                return p.runSync(r);
              } catch (e) {
                return String(e);
              }
            };
            const a = run(fast.pipeline);
            const b = run(general.pipeline);
            expect(typeof a === 'string' ? a : seen(a)).toEqual(typeof b === 'string' ? b : seen(b));
            if (typeof a !== 'string' && a.allowed) admitted.push(r);
          }
          expect(fast.shedder.state).toEqual(general.shedder.state);
        }
        for (const k of ['a', 'b', 'c'])
          expect(fast.limiter.peek(k, { cost: 1 })).toEqual(general.limiter.peek(k, { cost: 1 }));
        for (const side of [fast, general]) {
          side.shedder.close();
          side.limiter.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a waiting key stage rejects with an AbortError when the signal aborts, and nothing stays charged', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock });
    const p = new Pipeline([keyStage(limiter, 5000)]);
    expect(p.waits).toBe(true);
    expect(await p.run({ ...req(), signal: new AbortController().signal })).toMatchObject({ allowed: true });
    const ac = new AbortController();
    const waiting = p.run({ ...req(), signal: ac.signal });
    ac.abort();
    const err = await (waiting as Promise<unknown>).catch((e: unknown) => e);
    expect(isAbortError(err)).toBe(true);
    clock.advance(1000);
    expect(limiter.peek('k', { cost: 1, priority: 'normal' }).allowed).toBe(true);
    limiter.close();
  });
});
