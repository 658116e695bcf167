import { describe, expect, it } from 'vitest';
import { TurnBudget, turnBudgetFor } from '../../src/admission/turn-budget.js';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';

function setup(budgetMs = 50, refuseEarly = true) {
  const clock = new ManualClock();
  const ends: Array<() => void> = [];
  const budget = new TurnBudget({ budgetMs, clock, refuseEarly, defer: (fn) => ends.push(fn) });
  const endTurn = () => {
    for (const fn of ends.splice(0)) fn();
  };
  return { clock, budget, endTurn, ends };
}

describe('TurnBudget', () => {
  it('admits until the turn has run its budget, then refuses until the turn ends', () => {
    const { clock, budget, endTurn, ends } = setup(50, false);
    expect(budget.admit().allowed).toBe(true);
    expect(ends).toHaveLength(1); // the first request of a turn schedules the turn's end
    clock.advance(50);
    expect(budget.admit().allowed).toBe(true); // exactly at the budget: still admitted
    clock.advance(1);
    const refused = budget.admit();
    expect(refused).toMatchObject({ allowed: false, reason: 'shed', limit: 50, retryAfterMs: 1000 });
    expect(budget.refused).toBe(1);
    endTurn();
    expect(budget.admit().allowed).toBe(true); // a new turn starts afresh
    expect(ends).toHaveLength(1);
  });

  it('gives sheddable work half the budget and critical work twice', () => {
    const { clock, budget } = setup(40);
    budget.admit();
    clock.advance(21);
    expect(budget.admit({ priority: 'sheddable' }).allowed).toBe(false);
    expect(budget.admit({ priority: 'normal' }).allowed).toBe(true);
    clock.advance(20);
    expect(budget.admit({ priority: 'normal' }).allowed).toBe(false);
    expect(budget.admit({ priority: 'critical' }).allowed).toBe(true);
    clock.advance(40);
    expect(budget.admit({ priority: 'critical' }).allowed).toBe(false);
  });

  /**
   * One turn of `n` requests: admitted ones cost `serviceMs` of loop time, refused ones 0.125 ms
   * (a binary fraction, so the arithmetic below is exact).
   */
  function turn(s: ReturnType<typeof setup>, n: number, serviceMs: number) {
    const out: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const ok = s.budget.admit().allowed;
      out.push(ok);
      s.clock.advance(ok ? serviceMs : 0.125);
    }
    s.endTurn();
    return out;
  }
  const count = (xs: boolean[]) => xs.filter(Boolean).length;

  it('refuses early: after two overrun turns, the next refuses its first requests and admits the rest', () => {
    const s = setup(25);
    // 40 requests of 2 ms in one turn: 13 admitted (at 0, 2, ..., 24 ms), then the last 27 refused
    // at the tail, each after waiting through 26 ms of admitted work.
    const first = turn(s, 40, 2);
    expect(count(first.slice(0, 13))).toBe(13);
    expect(count(first.slice(13))).toBe(0);
    // One overrun could be a burst: the next turn starts afresh, and overruns the same way.
    expect(turn(s, 40, 2)).toEqual(first);
    expect(s.budget.refusedEarly).toBe(0);
    // Two in a row: the overload stands. The next turn's first 27 are refused at once (3.375 ms of
    // refusals), then the budget admits from there (11, at 3.375 + 2k ms <= 25) and refuses a tail of 2.
    const third = turn(s, 40, 2);
    expect(count(third.slice(0, 27))).toBe(0);
    expect(count(third.slice(27, 38))).toBe(11);
    expect(count(third.slice(38))).toBe(0);
    expect(s.budget.refusedEarly).toBe(27);
    // Settled: 29 refused at the head, the 11 newest admitted, nothing left for the tail.
    const fourth = turn(s, 40, 2);
    expect(count(fourth.slice(0, 29))).toBe(0);
    expect(count(fourth.slice(29))).toBe(11);
    expect(s.budget.refused).toBe(27 + 27 + 29 + 29);
    expect(s.budget.refusedEarly).toBe(27 + 29);
  });

  it('a single overrun (a burst) carries nothing to the next turn', () => {
    const s = setup(25);
    turn(s, 40, 2);
    expect(count(turn(s, 10, 2))).toBe(10);
    expect(s.budget.refusedEarly).toBe(0);
  });

  it('refusing early fades within a turn once the overload ends, and never starts within the budget', () => {
    const s = setup(25);
    turn(s, 40, 2);
    turn(s, 40, 2); // two overruns: 27 carried
    // The load falls to 10 requests a turn. All 10 are refused at the head (the carry is a
    // prediction); the turn lasts 1.25 ms, so the carry shrinks to ⌊10 · 1.25 / 25⌋ = 0.
    expect(count(turn(s, 10, 2))).toBe(0);
    expect(count(turn(s, 10, 2))).toBe(10);
    // Turns within the budget never refuse, however many there are.
    for (let i = 0; i < 100; i++) expect(count(turn(s, 12, 2))).toBe(12);
    expect(s.budget.refused).toBe(27 + 27 + 10);
  });

  it('a partial overload: the carry shrinks in proportion to the budget the turn used', () => {
    const s = setup(25);
    turn(s, 40, 2);
    turn(s, 40, 2); // 27 carried
    // 30 requests: 27 refused at the head (3.375 ms), 3 admitted (6 ms): the turn used 9.375 of 25
    // ms, so the next turn refuses ⌊27 · 9.375 / 25⌋ = 10 at its head.
    expect(count(turn(s, 30, 2))).toBe(3);
    const next = turn(s, 30, 2);
    expect(count(next.slice(0, 10))).toBe(0);
    // Then 12 admitted (at 1.25 + 2k ms <= 25) and a tail of 8.
    expect(count(next.slice(10, 22))).toBe(12);
    expect(count(next.slice(22))).toBe(0);
  });

  it('refuses early only the priorities the last turn refused', () => {
    const s = setup(20);
    // Sheddable work gets half the budget (10 ms): turns of sheddable work overrun, normal would not.
    for (let t = 0; t < 2; t++) {
      for (let i = 0; i < 20; i++) {
        s.budget.admit({ priority: 'sheddable' });
        s.clock.advance(1);
      }
      s.endTurn();
    }
    expect(s.budget.refused).toBe(18);
    // The next turn: normal and critical requests are not refused at its head; sheddable ones are.
    expect(s.budget.admit({ priority: 'critical' }).allowed).toBe(true);
    expect(s.budget.admit({ priority: 'normal' }).allowed).toBe(true);
    expect(s.budget.admit({ priority: 'sheddable' }).allowed).toBe(false);
    expect(s.budget.refusedEarly).toBe(1);
  });

  it('turnBudgetFor: the guard rule (a number, false, or the default with a shedder)', () => {
    expect(turnBudgetFor(false, true)).toBeUndefined();
    expect(turnBudgetFor(undefined, false)).toBeUndefined();
    expect(turnBudgetFor(undefined, true)?.budgetMs).toBe(25);
    expect(turnBudgetFor(10, false)?.budgetMs).toBe(10);
    expect(turnBudgetFor(10, true, { refuseEarly: false })?.refuseEarly).toBe(false);
    expect(() => turnBudgetFor(-1, true)).toThrow(/`turnBudgetMs`.*got `-1`/);
  });

  it('validates its options', () => {
    expect(() => new TurnBudget({ refuseEarly: 'yes' as never })).toThrow(/`refuseEarly`/);
    expect(() => new TurnBudget({ budgetMs: 0 })).toThrow(/`budgetMs`.*got `0`/);
    expect(() => new TurnBudget({ retryAfterMs: Number.NaN })).toThrow(/`retryAfterMs`/);
    try {
      new TurnBudget({ defer: 'soon' as never });
      expect.unreachable();
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
    }
  });
});
