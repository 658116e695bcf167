import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { refill } from '../../../src/limiters/bucket-math.js';
import { FACTOR_LOG_SIZE, FactorTimeline } from '../../../src/limiters/keyed/factor-timeline.js';

describe('FactorTimeline, alone', () => {
  it('without changes, tokensAt is one refill at the current factor', () => {
    const tl = new FactorTimeline(0.5, 0);
    // rate 0.01/ms at factor 1, burst 10: at 0.5 it refills 0.005/ms up to 5.
    expect(tl.tokensAt(0, 0, 400, 0.01, 10)).toBeCloseTo(2, 12);
    expect(tl.tokensAt(0, 0, 4000, 0.01, 10)).toBe(5);
  });

  it('replays each segment at its own factor and clamps at every cut; a rise creates no tokens', () => {
    const tl = new FactorTimeline(1, 0);
    tl.record(100, 0.2); // cut at 100: capacity 2
    tl.record(300, 1); // back at 300
    // A bucket full (10) at t=0, rate 0.01/ms: at 100 still 10, clamped to 2; 100..300 at 0.002/ms
    // up to 2 (stays 2); 300..500 at 0.01/ms: 2 + 2 = 4.
    expect(tl.tokensAt(10, 0, 500, 0.01, 10)).toBeCloseTo(4, 12);
    // A bucket empty at 150: 150..300 at 0.002/ms = 0.3; then 200 ms at 0.01/ms = 2: 2.3.
    expect(tl.tokensAt(0, 150, 500, 0.01, 10)).toBeCloseTo(2.3, 12);
    // Settled after the last change: no replay.
    expect(tl.tokensAt(0, 300, 500, 0.01, 10)).toBeCloseTo(2, 12);
  });

  it('never records a change in a settled bucket’s past', () => {
    const tl = new FactorTimeline(1, 0);
    tl.lastSettle = 50;
    expect(tl.changeTime(10)).toBe(50);
    expect(tl.changeTime(70)).toBe(70);
  });

  it('answers reset when the log is full, and starts an empty log at the new factor', () => {
    const tl = new FactorTimeline(1, 0);
    for (let i = 0; i < FACTOR_LOG_SIZE; i++) expect(tl.record(i + 1, i % 2 === 0 ? 0.5 : 1)).toBe('logged');
    expect(tl.isFull).toBe(true);
    expect(tl.record(1000, 0.25)).toBe('reset');
    expect(tl.length).toBe(0);
    expect(tl.factor).toBe(0.25);
    expect(tl.before).toBe(0.25);
    expect(tl.start).toBe(1000);
    expect(tl.lastChange).toBe(-Infinity);
  });

  // A bucket settled at the very instant of a change is clamped by the engine's sweep, not replayed:
  // the property keeps changes strictly after the bucket's settle.
  it('property: a replay equals an eager bucket that applies every change as it happens', () => {
    const change = fc.record({
      dt: fc.double({ min: 0.001, max: 1000, noNaN: true }),
      f: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(
      fc.property(
        fc.array(change, { maxLength: FACTOR_LOG_SIZE }),
        fc.double({ min: 0, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 1000, noNaN: true }),
        (changes, x0, tail) => {
          const rate = 0.01;
          const burst = 10;
          const tl = new FactorTimeline(1, 0);
          let eager = Math.min(x0, burst);
          let t = 0;
          let f = 1;
          for (const c of changes) {
            eager = refill(eager, c.dt, rate * f, burst * f);
            t += c.dt;
            if (c.f !== f) {
              tl.record(t, c.f);
              f = c.f;
              eager = Math.min(eager, burst * f);
            }
          }
          eager = refill(eager, tail, rate * f, burst * f);
          const replayed = tl.tokensAt(Math.min(x0, burst), 0, t + tail, rate, burst);
          expect(replayed).toBeCloseTo(eager, 9);
        },
      ),
    );
  });
});
