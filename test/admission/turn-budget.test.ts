import { describe, expect, it } from 'vitest';
import {
  LIGHT_GRACE,
  RECENT_OVERRUN_TURNS,
  TURN_BUDGET_DEFAULTS,
  TurnBudget,
  turnBudgetFor,
} from '../../src/admission/turn-budget.js';
import { MAX_TURN_KEYS, TURN_KEYS_DECAY, TurnKeys, waterLevel } from '../../src/admission/turn-keys.js';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';

/**
 * A budget on ManualClock whose turns end when the test says. The tests of one rule each (refusing
 * early, two turns in a row, heavy keys first) keep the whole budget throughout (`standingShare`
 * 1), so that their counts follow from that rule alone; "a standing overload" tests the share.
 */
function setup(budgetMs = 50, refuseEarly = true, standingShare = 1) {
  const clock = new ManualClock();
  const ends: Array<() => void> = [];
  const budget = new TurnBudget({ budgetMs, clock, refuseEarly, standingShare, defer: (fn) => ends.push(fn) });
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
    // One overrun could be a burst: the next turn carries nothing, and refuses only its tail. It ran
    // 26 + 27 · 0.125 = 29.375 ms, 4.375 past the budget, so the next turn's budget is 20.625 ms
    // (two turns in a row): 11 admitted (at 0, 2, ..., 20 ms), a tail of 29.
    const second = turn(s, 40, 2);
    expect(count(second.slice(0, 11))).toBe(11);
    expect(count(second.slice(11))).toBe(0);
    expect(s.budget.refusedEarly).toBe(0);
    // Two in a row: the overload stands. The next turn's first 29 are refused at once (3.625 ms of
    // refusals), then the budget (25 - 0.625 ms: the turn before ran 25.625) admits the 11 left.
    const third = turn(s, 40, 2);
    expect(count(third.slice(0, 29))).toBe(0);
    expect(count(third.slice(29))).toBe(11);
    expect(s.budget.refusedEarly).toBe(29);
    // Settled: 29 refused at the head, the 11 newest admitted, nothing left for the tail.
    const fourth = turn(s, 40, 2);
    expect(fourth).toEqual(third);
    expect(s.budget.refused).toBe(27 + 29 + 29 + 29);
    expect(s.budget.refusedEarly).toBe(29 + 29);
  });

  it('a single overrun (a burst) carries nothing to the next turn', () => {
    const s = setup(25);
    turn(s, 40, 2);
    expect(count(turn(s, 10, 2))).toBe(10);
    expect(s.budget.refusedEarly).toBe(0);
  });

  it('an overrun within RECENT_OVERRUN_TURNS of another carries its refusals (the overload is near); later, it carries nothing', () => {
    const s = setup(25);
    turn(s, 40, 2); // overran: 13 admitted, 27 refused at its tail
    for (let t = 0; t < 10; t++) turn(s, 10, 2); // turns that fit
    const refused = s.budget.refused;
    turn(s, 40, 2); // overran again, 10 turns later: its refusals are carried
    const tail = s.budget.refused - refused;
    expect(tail).toBeGreaterThan(0);
    const next = turn(s, 40, 2);
    expect(next.slice(0, tail).every((ok) => !ok)).toBe(true); // refused at its head
    expect(s.budget.refusedEarly).toBeGreaterThanOrEqual(tail);

    // Long after the last overrun, an overrun is a burst again.
    for (let t = 0; t < RECENT_OVERRUN_TURNS + 2; t++) turn(s, 10, 2);
    const early = s.budget.refusedEarly;
    turn(s, 40, 2);
    expect(count(turn(s, 10, 2))).toBe(10);
    expect(s.budget.refusedEarly).toBe(early);
  });

  it('refusing early fades within a turn once the overload ends, and never starts within the budget', () => {
    const s = setup(25);
    turn(s, 40, 2);
    turn(s, 40, 2); // two overruns: 29 carried
    // The load falls to 10 requests a turn. All 10 are refused at the head (the carry is a
    // prediction); the turn lasts 1.25 ms, so the carry shrinks to ⌊10 · 1.25 / 25⌋ = 0.
    expect(count(turn(s, 10, 2))).toBe(0);
    expect(count(turn(s, 10, 2))).toBe(10);
    // Turns within the budget never refuse, however many there are.
    for (let i = 0; i < 100; i++) expect(count(turn(s, 12, 2))).toBe(12);
    expect(s.budget.refused).toBe(27 + 29 + 10);
  });

  it('a partial overload: the carry shrinks in proportion to the budget the turn used', () => {
    const s = setup(25);
    turn(s, 40, 2);
    turn(s, 40, 2); // 29 carried
    // 30 requests: 29 refused at the head (3.625 ms), 1 admitted (2 ms): the turn used 5.625 of 25
    // ms, so the next turn refuses ⌊29 · 5.625 / 25⌋ = 6 at its head.
    expect(count(turn(s, 30, 2))).toBe(1);
    const next = turn(s, 30, 2);
    expect(count(next.slice(0, 6))).toBe(0);
    // Then 13 admitted (at 0.75 + 2k ms <= 25) and a tail of 11.
    expect(count(next.slice(6, 19))).toBe(13);
    expect(count(next.slice(19))).toBe(0);
  });

  it('two turns in a row: a turn after an overrun gets its budget cut by the overrun, at least 0', () => {
    const s = setup(25, false);
    // An overrun turn: admitted until 25 ms, then 32 requests refused at its tail; it ends at 31 ms.
    s.budget.admit();
    s.clock.advance(25);
    expect(s.budget.admit().allowed).toBe(true);
    s.clock.advance(2);
    for (let i = 0; i < 32; i++) {
      expect(s.budget.admit().allowed).toBe(false);
      s.clock.advance(0.125);
    }
    s.endTurn(); // 31 ms: 6 past the budget
    // The next turn may run 25 - 6 = 19 ms (normal), 12.5 - 6 (sheddable), 50 - 6 (critical).
    s.budget.admit();
    s.clock.advance(6.5);
    expect(s.budget.admit({ priority: 'sheddable' }).allowed).toBe(true);
    s.clock.advance(0.5);
    expect(s.budget.admit({ priority: 'sheddable' }).allowed).toBe(false);
    s.clock.advance(12);
    expect(s.budget.admit().allowed).toBe(true); // at 19 ms
    s.clock.advance(0.5);
    expect(s.budget.admit().allowed).toBe(false);
    expect(s.budget.admit({ priority: 'critical' }).allowed).toBe(true);
    s.clock.advance(5);
    s.endTurn(); // 24.5 ms, not past the budget: nothing to cut, the next turn has it all
    s.budget.admit();
    s.clock.advance(25);
    expect(s.budget.admit().allowed).toBe(true);
    s.endTurn();

    // A turn far past the budget (the first turn of a sudden overload) leaves the next one no
    // budget past its first request: what it holds has waited through the long turn already.
    s.budget.admit();
    s.clock.advance(200);
    expect(s.budget.admit().allowed).toBe(false);
    s.endTurn();
    expect(s.budget.admit({ priority: 'critical' }).allowed).toBe(true); // at 0 ms
    s.clock.advance(0.125);
    expect(s.budget.admit({ priority: 'critical' }).allowed).toBe(false);
    s.endTurn();
  });

  it('two turns in a row: a long turn that refused nothing (one slow request) cuts nothing', () => {
    const s = setup(25, false);
    s.budget.admit();
    s.clock.advance(40); // one 40 ms request, nothing behind it
    s.endTurn();
    s.budget.admit();
    s.clock.advance(25);
    expect(s.budget.admit().allowed).toBe(true);
    expect(s.budget.refused).toBe(0);
  });

  it('two turns in a row: light keys keep their grace on the full budget; the cut falls on the heavy keys', () => {
    const s = setup(20);
    const keys = Array.from({ length: 30 }, (_, i) => (i % 10 === 9 ? 'light' : 'heavy'));
    keyedTurn(s, keys, 2);
    keyedTurn(s, keys, 2);
    // A long turn of 60 requests: it runs to the light key's grace (25 ms) and past it with the
    // tail's refusals, so the next turn's budget is cut by what it ran past 20 ms.
    const long = Array.from({ length: 60 }, (_, i) => (i % 10 === 9 ? 'light' : 'heavy'));
    const start = s.clock.now();
    keyedTurn(s, long, 2);
    const cut = s.clock.now() - start - 20;
    expect(cut).toBeGreaterThan(5);
    const now = s.clock.now();
    const out: { key: string; ok: boolean; at: number }[] = [];
    for (let i = 0; i < 60; i++) {
      const key = long[i]!;
      const ok = s.budget.admit({ key }).allowed;
      out.push({ key, ok, at: s.clock.now() - now });
      s.clock.advance(ok ? 2 : 0.125);
    }
    s.endTurn();
    // No heavy request admitted past the cut budget; every light one admitted up to 1.25 · 20 ms.
    expect(out.filter((o) => o.key === 'heavy' && o.ok && o.at > 20 - cut)).toHaveLength(0);
    const lateLight = out.filter((o) => o.key === 'light' && o.at > 20 - cut && o.at <= 25);
    expect(lateLight.length).toBeGreaterThan(0);
    expect(lateLight.every((o) => o.ok)).toBe(true);
  });

  it('a standing overload: once turns overrun in a row, each runs standingShare of the budget', () => {
    const s = setup(25, false, 0.8);
    // The first two turns are those of "two turns in a row" below: 13 admitted in 29.375 ms, then
    // 11 in 25.625 ms under a budget cut to 20.625.
    expect([turn(s, 40, 2), turn(s, 40, 2)].map(count)).toEqual([13, 11]);
    // Two overruns in a row: the overload stands, and the third turn's budget is 25 · 0.8 = 20 ms,
    // cut by the 0.625 ms the second ran past its 25: 19.375, so 10 admitted (0, 2, ..., 18 ms) and
    // 30 refused: 23.75 ms, 3.75 past 20. The fourth: 20 - 3.75 = 16.25, 9 admitted, 21.875 ms.
    const standing = [turn(s, 40, 2), turn(s, 40, 2), turn(s, 40, 2), turn(s, 40, 2)].map(count);
    expect(standing).toEqual([10, 9, 10, 9]);
    // The whole budget throughout (standingShare 1) admits 13 and 11, turn after turn.
    const whole = setup(25, false, 1);
    const all = Array.from({ length: 6 }, () => count(turn(whole, 40, 2)));
    expect(all).toEqual([13, 11, 13, 11, 13, 11]);
  });

  it('a standing overload: a burst (one overrun) keeps the whole budget', () => {
    const s = setup(25, false, 0.8);
    turn(s, 40, 2);
    turn(s, 5, 2); // 10 ms: within the budget
    // Not two overruns in a row: 13 requests of 2 ms (the last at 24 ms) are all admitted.
    expect(count(turn(s, 13, 2))).toBe(13);
  });

  it('a standing overload: the whole budget returns RECENT_OVERRUN_TURNS turns after the last overrun', () => {
    const burstAfter = (quiet: number) => {
      const s = setup(25, false, 0.8);
      for (let i = 0; i < 4; i++) turn(s, 40, 2);
      for (let i = 0; i < quiet; i++) turn(s, 1, 2);
      return count(turn(s, 13, 2));
    };
    // Soon after the overload a burst gets the standing budget, 20 ms: 11 admitted (0, 2, ..., 20).
    expect(burstAfter(2)).toBe(11);
    expect(burstAfter(RECENT_OVERRUN_TURNS - 1)).toBe(11);
    // After RECENT_OVERRUN_TURNS turns that did not overrun, the whole 25 ms again: all 13.
    expect(burstAfter(RECENT_OVERRUN_TURNS)).toBe(13);
  });

  it('a standing overload: with the defaults, refusing early, turns settle at standingShare of the budget', () => {
    const s = setup(25, true, TURN_BUDGET_DEFAULTS.standingShare);
    expect(TURN_BUDGET_DEFAULTS.standingShare).toBe(0.8);
    const turns = Array.from({ length: 8 }, () => turn(s, 40, 2));
    // The third turn refuses the second's 29 at its head (3.625 ms), admits 8 by its budget of
    // 20 - 0.625 = 19.375 ms (the last at 17.625) and refuses the last 3: 20 ms. From the fourth on:
    // 32 refused at the head (4 ms), then 8 admitted (16 ms): 20 ms a turn, against 25.625 ms (29
    // refused, 11 admitted) with the whole budget (see "refuses early").
    expect(count(turns[2]!.slice(0, 29))).toBe(0);
    expect(count(turns[2]!)).toBe(8);
    for (const t of turns.slice(3)) {
      expect(count(t.slice(0, 32))).toBe(0);
      expect(count(t.slice(32))).toBe(8);
    }
    expect(s.clock.now()).toBe(29.375 + 25.625 + 6 * 20);
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

  /**
   * One turn of keyed requests, in the order given: admitted ones cost `serviceMs`, refused ones
   * 0.125 ms. Answers the admitted count per key.
   */
  function keyedTurn(s: ReturnType<typeof setup>, keys: string[], serviceMs: number) {
    const admitted: Record<string, number> = {};
    for (const key of keys) {
      const ok = s.budget.admit({ key }).allowed;
      if (ok) admitted[key] = (admitted[key] ?? 0) + 1;
      s.clock.advance(ok ? serviceMs : 0.125);
    }
    s.endTurn();
    return admitted;
  }
  /** 30 requests a turn: a heavy key's 23 with a light key's 5 and a lighter key's 2 among them. */
  const mixed = () =>
    Array.from({ length: 30 }, (_, i) => (i % 15 === 7 ? 'lighter' : i % 6 === 3 ? 'light' : 'heavy'));

  it('heavy keys first: under a standing overload the light keys keep every request, the heavy one is cut', () => {
    const s = setup(25);
    const keys = mixed();
    expect(keys.filter((k) => k === 'light')).toHaveLength(5);
    expect(keys.filter((k) => k === 'lighter')).toHaveLength(2);
    // Two overrun turns, refused by the tail rule alike: every key at the tail loses.
    keyedTurn(s, keys, 2);
    const second = keyedTurn(s, keys, 2);
    expect((second.light ?? 0) + (second.lighter ?? 0)).toBeLessThan(7);
    // From then on the carried refusals go to the heavy key only: 11 or 12 admissions a turn (the
    // turn's refusals take the rest of the budget, and a turn that ran past it cuts the next one's)
    // leave the heavy key 4 or 5 of its 23, refused the rest, spread over the turn.
    for (let t = 0; t < 5; t++) {
      const a = keyedTurn(s, keys, 2);
      expect(a.light).toBe(5);
      expect(a.lighter).toBe(2);
      expect(a.heavy).toBeGreaterThanOrEqual(4);
      expect(a.heavy).toBeLessThanOrEqual(5);
    }
  });

  it('heavy keys first: the refusals are spread over the turn, not bunched at its head', () => {
    const s = setup(25);
    const keys = Array.from({ length: 40 }, () => 'heavy');
    keys[5] = 'light';
    keyedTurn(s, keys, 2);
    keyedTurn(s, keys, 2);
    // One heavy key: its share to refuse is (39 - 12) / 39. The admitted heavy requests are spread
    // over the turn (about one in three), not all at its end.
    const seen: boolean[] = [];
    for (const key of keys) {
      const ok = s.budget.admit({ key }).allowed;
      seen.push(ok);
      s.clock.advance(ok ? 2 : 0.125);
    }
    s.endTurn();
    expect(seen[5]).toBe(true); // the light key
    expect(count(seen.slice(0, 20))).toBeGreaterThanOrEqual(6);
    expect(count(seen.slice(20))).toBeGreaterThanOrEqual(5);
  });

  it('heavy keys first: a light key past the budget is admitted up to LIGHT_GRACE, the heavy one is not', () => {
    const s = setup(20);
    const keys = Array.from({ length: 30 }, (_, i) => (i % 10 === 9 ? 'light' : 'heavy'));
    keyedTurn(s, keys, 2);
    keyedTurn(s, keys, 2);
    // A longer turn than the last: 60 requests. Past 20 ms, heavy requests not owed a refusal are
    // refused at the tail; light ones are admitted until 25 ms.
    const now = s.clock.now();
    const out: { key: string; ok: boolean; at: number }[] = [];
    for (let i = 0; i < 60; i++) {
      const key = i % 10 === 9 ? 'light' : 'heavy';
      const ok = s.budget.admit({ key }).allowed;
      out.push({ key, ok, at: s.clock.now() - now });
      s.clock.advance(ok ? 2 : 0.125);
    }
    s.endTurn();
    const late = out.filter((o) => o.at > 20);
    expect(late.filter((o) => o.key === 'heavy' && o.ok)).toHaveLength(0);
    expect(late.filter((o) => o.key === 'light' && o.at <= 25).every((o) => o.ok)).toBe(true);
    expect(out.filter((o) => o.at > 25).every((o) => !o.ok)).toBe(true);
    expect(LIGHT_GRACE).toBe(1.25);
  });

  it('heavy keys first: a light key at the very end of every turn keeps being served, and turns stay near the budget', () => {
    const s = setup(20);
    // Every turn: 30 heavy requests, then 4 light ones at its very end (the worst case for them).
    const keys = [...Array.from({ length: 30 }, () => 'heavy'), 'light', 'light', 'light', 'light'];
    const lengths: number[] = [];
    let lightServed = 0;
    for (let t = 0; t < 12; t++) {
      const start = s.clock.now();
      const a = keyedTurn(s, keys, 2);
      lengths.push(s.clock.now() - start);
      if (t >= 3) lightServed += a.light ?? 0;
    }
    // Once settled, the light key keeps all it sends and the turns stay within LIGHT_GRACE of the
    // budget: what ran past it (the heavy key's tail refusals, the light key's late admissions) is
    // carried to the heavy key's share of the next turn.
    expect(lightServed).toBe(9 * 4);
    for (const ms of lengths.slice(3)) expect(ms).toBeLessThanOrEqual(LIGHT_GRACE * 20 + 2);
  });

  it('heavy keys first: falls back to the uniform rule when a turn admits fewer than it has keys', () => {
    const s = setup(25);
    // 40 clients, one request each, every turn: fairness within a turn has no meaning (11 admitted
    // of 40 keys), so the next turn refuses its first 29, as without keys.
    const keys = Array.from({ length: 40 }, (_, i) => `client-${i}`);
    keyedTurn(s, keys, 2);
    keyedTurn(s, keys, 2);
    const early = s.budget.refusedEarly;
    const seen: boolean[] = [];
    for (const key of keys) {
      const ok = s.budget.admit({ key }).allowed;
      seen.push(ok);
      s.clock.advance(ok ? 2 : 0.125);
    }
    s.endTurn();
    expect(count(seen.slice(0, 29))).toBe(0);
    expect(count(seen.slice(29))).toBe(11);
    expect(s.budget.refusedEarly - early).toBe(29);
  });

  it('heavy keys first: counts nothing outside an overload, and the carry ends with it', () => {
    const s = setup(25);
    const keys = mixed();
    keyedTurn(s, keys, 2);
    keyedTurn(s, keys, 2);
    keyedTurn(s, keys, 2);
    // The load falls to 8 requests a turn: the heavy key's share is refused once more (the carry is
    // a prediction) and fades in proportion to the budget that turn used (one more refusal), then
    // the turns fit and nothing is refused.
    const light = ['heavy', 'light', 'heavy', 'heavy', 'lighter', 'heavy', 'heavy', 'heavy'];
    const first = keyedTurn(s, light, 2);
    expect(first.light).toBe(1);
    expect(first.lighter).toBe(1);
    const second = keyedTurn(s, light, 2);
    expect(second.heavy).toBeGreaterThanOrEqual(5);
    const refused = s.budget.refused;
    for (let t = 0; t < 20; t++) keyedTurn(s, light, 2);
    expect(s.budget.refused).toBe(refused);
  });

  it('heavy keys first: near an overload, the tail of an overrun turn with nothing carried refuses the heavy keys first', () => {
    const s = setup(20);
    const calm = ['heavy', 'light', 'heavy', 'heavy', 'lighter', 'heavy', 'heavy', 'heavy'];
    // One turn that overruns on its own (no carry: one overrun is a burst): 34 heavy requests, then
    // the light keys' 6 at its very end, past the budget.
    const burst = [...Array.from({ length: 34 }, () => 'heavy'), 'light', 'light', 'light', 'light', 'lighter', 'lighter'];
    const tailOf = () => {
      const start = s.clock.now();
      const out: { key: string; ok: boolean; at: number }[] = [];
      for (const key of burst) {
        const ok = s.budget.admit({ key }).allowed;
        out.push({ key, ok, at: s.clock.now() - start });
        s.clock.advance(ok ? 0.55 : 0.125);
      }
      s.endTurn();
      return out.filter((o) => o.at > 20);
    };
    // A standing overload, then calm turns that fit: its carry is gone.
    for (let t = 0; t < 3; t++) keyedTurn(s, mixed(), 2);
    for (let t = 0; t < 4; t++) keyedTurn(s, calm, 2);
    const refused = s.budget.refused;
    keyedTurn(s, calm, 2);
    expect(s.budget.refused).toBe(refused);
    // Within RECENT_OVERRUN_TURNS of the overload, the keys are still counted: past the budget the
    // heavy key is refused, the light ones (at most half its rate) are admitted up to LIGHT_GRACE.
    const near = tailOf();
    expect(near.filter((o) => o.key === 'heavy' && o.ok)).toHaveLength(0);
    const light = near.filter((o) => o.key !== 'heavy' && o.at <= LIGHT_GRACE * 20);
    expect(light.length).toBeGreaterThan(0);
    expect(light.every((o) => o.ok)).toBe(true);
    // Long after it, nothing is counted (it costs nothing): the tail is refused alike.
    for (let t = 0; t < RECENT_OVERRUN_TURNS + 1; t++) keyedTurn(s, calm, 2);
    const far = tailOf();
    expect(far.filter((o) => o.key !== 'heavy').every((o) => !o.ok)).toBe(true);
  });

  it('turnBudgetFor: the guard rule (a number, false, or the default with a shedder)', () => {
    expect(turnBudgetFor(false, true)).toBeUndefined();
    expect(turnBudgetFor(undefined, false)).toBeUndefined();
    expect(turnBudgetFor(undefined, true)?.budgetMs).toBe(25);
    expect(turnBudgetFor(10, false)?.budgetMs).toBe(10);
    expect(turnBudgetFor(10, true, { refuseEarly: false })?.refuseEarly).toBe(false);
    expect(() => turnBudgetFor(-1, true)).toThrow(/`turnBudgetMs`.*got `-1`/);
    expect(() => turnBudgetFor(Infinity, true)).toThrow(/false \(no budget\), or a TurnBudget/);
    // A budget of your own is used as it is, with or without a shedder.
    const own = new TurnBudget({ budgetMs: 30, standingShare: 1 });
    expect(turnBudgetFor(own, false)).toBe(own);
    expect(turnBudgetFor(own, true, { refuseEarly: false })).toBe(own);
  });

  it('validates its options', () => {
    expect(() => new TurnBudget({ refuseEarly: 'yes' as never })).toThrow(/`refuseEarly`/);
    expect(() => new TurnBudget({ budgetMs: 0 })).toThrow(/`budgetMs`.*got `0`/);
    expect(() => new TurnBudget({ retryAfterMs: Number.NaN })).toThrow(/`retryAfterMs`/);
    expect(() => new TurnBudget({ standingShare: 0 })).toThrow(/`standingShare`.*> 0 and <= 1.*got `0`/);
    expect(() => new TurnBudget({ standingShare: 1.5 })).toThrow(/`standingShare`.*got `1.5`/);
    expect(new TurnBudget({ standingShare: 1 }).standingShare).toBe(1);
    try {
      new TurnBudget({ defer: 'soon' as never });
      expect.unreachable();
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
    }
  });
});

describe('TurnKeys', () => {
  it('waterLevel: the max-min fair level over rates, with untracked keys at one request each', () => {
    // 12 admissions over 2, 4 and 20: the two light keys fit, the heavy one gets the other 6.
    expect(waterLevel([2, 4, 20], 0, 12)).toBe(6);
    expect(waterLevel([2, 4, 20], 0, 4)).toBeCloseTo(4 / 3, 12);
    // Everything fits: the level is the largest rate (no key above it), or Infinity past the sum.
    expect(waterLevel([2, 4, 20], 0, 26)).toBe(20);
    expect(waterLevel([2, 4, 20], 0, 27)).toBe(Number.POSITIVE_INFINITY);
    // Three untracked keys of one each and a heavy 10: 7 admissions leave it 4.
    expect(waterLevel([10], 3, 7)).toBe(4);
    // 0.5 fits; 2.5 left over three keys (two untracked, one heavy): under one each.
    expect(waterLevel([0.5, 10], 2, 3)).toBeCloseTo(2.5 / 3, 12);
  });

  it("shares a turn's refusals over the keys above the fair level, from rates smoothed over turns", () => {
    const k = new TurnKeys();
    const turn = (heavy: number, light: number, carry: number) => {
      for (let i = 0; i < heavy; i++) k.count('heavy');
      for (let i = 0; i < light; i++) k.count('light');
      expect(k.total).toBe(heavy + light);
      expect(k.keys).toBe((heavy > 0 ? 1 : 0) + (light > 0 ? 1 : 0));
      return k.endTurn(carry);
    };
    // 24 heavy and 4 light arrivals, 16 to refuse: 12 admitted, the level is 8, the heavy key's share
    // (24 - 8) / 24.
    const first = turn(24, 4, 16)!;
    expect([...first.keys()]).toEqual(['heavy']);
    expect(first.get('heavy')!.share).toBeCloseTo(16 / 24, 12);
    expect(first.get('heavy')!.owed).toBe(0.5);
    for (let t = 0; t < 5; t++) turn(24, 4, 16);
    // A turn where the light key sent 9 of 30 by chance: on that turn alone the level (12 admitted,
    // 6 each) would put it over; smoothed over the turns before (rate ~5), it stays under (~6.3).
    const second = turn(21, 9, 18)!;
    expect(second.has('light')).toBe(false);
    expect(second.get('heavy')!.share).toBeGreaterThan(0.5);
    // Nothing to refuse: no shares.
    expect(turn(10, 2, 0)!.size).toBe(0);
    k.reset();
    // One key alone: the uniform rule.
    expect(turn(30, 0, 10)).toBeUndefined();
  });

  it('falls back to the uniform rule below one request a turn per key, and without counted arrivals', () => {
    const k = new TurnKeys();
    for (let i = 0; i < 40; i++) k.count(`client-${i}`);
    expect(k.endTurn(27)).toBeUndefined();
    k.reset();
    expect(k.endTurn(5)).toBeUndefined();
  });

  it('tracks at most MAX_TURN_KEYS keys; the rest count as one request each for their turn', () => {
    const k = new TurnKeys();
    for (let i = 0; i < MAX_TURN_KEYS; i++) k.count(`k${i}`);
    for (let i = 0; i < 10; i++) k.count('late');
    k.count('k0');
    expect(k.keys).toBe(MAX_TURN_KEYS + 10);
    expect(k.total).toBe(MAX_TURN_KEYS + 11);
    // Every key at one a turn but k0 at two: one refusal falls on k0 alone.
    const shares = k.endTurn(1)!;
    expect([...shares.keys()]).toEqual(['k0']);
    expect(shares.get('k0')!.share).toBeCloseTo(0.5, 12);
    expect(TURN_KEYS_DECAY).toBe(0.875);
  });
});
