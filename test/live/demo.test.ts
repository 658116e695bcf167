// The demo's reading of a run, on a recorded report (no servers): which mechanisms acted, the line
// the README shows, and the README block's replacement.
import { describe, expect, it } from 'vitest';
import {
  DEMO_PHASES,
  mechanismsOf,
  phaseLine,
  README_END,
  rederive,
  README_START,
  replaceReadmeBlock,
} from '../../simulations/src/live/demo.js';
import type { LiveReport } from '../../simulations/src/live/live.js';
import type { DecisionSecond } from '../../simulations/src/live/server.js';

function second(refused: Record<string, number>, keyFactor: number | null): DecisionSecond {
  return { admitted: 10, refused, keyFactor, keyLimit: null, waited: 0, queueMeanMs: 0, queueMaxMs: 0 };
}

function report(decisions: (DecisionSecond | null)[], minFactor: number | null): LiveReport {
  return {
    summary: {
      minFactor,
      tenants: [
        { tenant: 'heavy', demand: 1000, goodput: 400, fairShare: 0 },
        { tenant: 'light', demand: 200, goodput: 198, fairShare: 0 },
      ],
      goodputShareOfCapacity: 0.97,
      episodes: [{ goodputShare: 0.99 }],
      latencyMs: { p50: 10, p99: 31.4, max: 50 },
    },
    live: { decisions, timeouts: 0 },
  } as unknown as LiveReport;
}

describe('mechanismsOf', () => {
  it('names each stage that refused, by count, with the scaled quota and the factor', () => {
    const r = report(
      [
        null,
        second({ 'turn-budget:shed': 5 }, 1),
        second({ 'key:limited': 40, 'key:shed': 5, 'turn-budget:shed': 3 }, 0.6),
        second({ 'key:limited': 20, 'concurrency:codel': 2, 'concurrency:queue-full': 1 }, 0.5),
      ],
      0.5,
    );
    const m = mechanismsOf(r);
    expect(m.map((x) => x.kind)).toEqual(['key-limiter', 'turn-budget', 'concurrency', 'governor-factor']);
    expect(m[0]).toEqual({
      kind: 'key-limiter',
      refused: 65,
      reasons: { limited: 60, shed: 5 },
      lowest: 0.5,
    });
    expect(m[2]).toEqual({ kind: 'concurrency', refused: 3, reasons: { codel: 2, 'queue-full': 1 } });
    expect(m[3]).toMatchObject({ kind: 'governor-factor', lowest: 0.5 });
    const line = phaseLine(DEMO_PHASES[1]!, r, m);
    expect(line).toBe(
      '**CPU-bound, Spillway**: acted: key limiter with scaled quota (60 limited → 429, 5 shed → 503; quota down to 50%); ' +
        'loop-turn budget (8 shed → 503); concurrency stage (2 codel → 503, 1 queue-full → 503); governor factor (down to 0.50). ' +
        'Served of what each sent: heavy 40%, light 99%; goodput 99% of capacity during the step (97% over the whole run), ' +
        '2xx p99 31 ms, 0 client timeouts.',
    );
  });

  it('reports nothing for a run without refusals or factor moves', () => {
    const r = report([null, null], null);
    expect(mechanismsOf(r)).toEqual([]);
    expect(phaseLine(DEMO_PHASES[0]!, r, [])).toMatch(/^\*\*CPU-bound, no protection\*\*: nothing refuses\./);
    const quiet = report([second({}, 1)], 1);
    expect(mechanismsOf(quiet)).toEqual([]);
    expect(phaseLine(DEMO_PHASES[1]!, quiet, [])).toContain('no mechanism acted');
  });
});

describe('rederive', () => {
  it('derives the mechanisms and line of a recorded phase afresh from its report', () => {
    const r = report([second({ 'turn-budget:shed': 7 }, 1)], null);
    const demo = rederive({
      scenario: 'demo-tenants',
      capacityPerSec: { cpu: 400, pool: null },
      phases: [{ phase: DEMO_PHASES[1]!, report: r, keyRatePerSec: 800, mechanisms: [], line: 'stale' }],
      wallMs: 1,
    });
    expect(demo.phases[0]!.mechanisms).toEqual([{ kind: 'turn-budget', refused: 7, reasons: { shed: 7 } }]);
    expect(demo.phases[0]!.line).toContain('acted: loop-turn budget (7 shed → 503)');
  });
});

describe('replaceReadmeBlock', () => {
  it('replaces only what lies between the markers, and refuses a file without them', () => {
    const text = `a\n${README_START}\nold\n${README_END}\nb\n`;
    expect(replaceReadmeBlock(text, 'new')).toBe(`a\n${README_START}\nnew\n${README_END}\nb\n`);
    expect(() => replaceReadmeBlock('no markers', 'x')).toThrow(/demo:phases:start/);
  });
});
