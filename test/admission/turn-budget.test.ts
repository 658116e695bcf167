import { describe, expect, it } from 'vitest';
import { TurnBudget } from '../../src/admission/turn-budget.js';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';

function setup(budgetMs = 50) {
  const clock = new ManualClock();
  const ends: Array<() => void> = [];
  const budget = new TurnBudget({ budgetMs, clock, defer: (fn) => ends.push(fn) });
  const endTurn = () => {
    for (const fn of ends.splice(0)) fn();
  };
  return { clock, budget, endTurn, ends };
}

describe('TurnBudget', () => {
  it('admits until the turn has run its budget, then refuses until the turn ends', () => {
    const { clock, budget, endTurn, ends } = setup(50);
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

  it('validates its options', () => {
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
