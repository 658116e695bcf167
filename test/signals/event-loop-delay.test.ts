import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { type DelayHistogram, eventLoopDelay } from '../../src/signals/event-loop-delay.js';

/**
 * A histogram whose timer's lateness (ms) the test sets. Like Node's, it records the whole interval
 * between its timer's runs, `resolutionMs` + lateness; percentile is nearest-rank like HdrHistogram.
 */
class FakeHistogram implements DelayHistogram {
  values: number[] = [];
  resolutionMs = 0;
  enabled = false;
  resets = 0;
  enable() {
    this.enabled = true;
  }
  disable() {
    this.enabled = false;
  }
  reset() {
    this.values = [];
    this.resets++;
  }
  get count() {
    return this.values.length;
  }
  get max() {
    return Math.max(...this.values.map((v) => (v + this.resolutionMs) * 1e6));
  }
  percentile(p: number) {
    const sorted = this.values.slice().sort((a, b) => a - b);
    return (sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]! + this.resolutionMs) * 1e6;
  }
}

function setup(options: Parameters<typeof eventLoopDelay>[0] = {}) {
  const clock = new ManualClock(1000);
  const hist = new FakeHistogram();
  let resolution = 0;
  const signal = eventLoopDelay({
    clock,
    createHistogram: (r) => {
      resolution = r;
      hist.resolutionMs = r;
      return hist;
    },
    ...options,
  });
  return { clock, hist, signal, resolution: () => resolution };
}

describe('eventLoopDelay', () => {
  it('has the documented defaults', () => {
    const s = eventLoopDelay();
    expect([s.name, s.unit, s.target, s.limit, s.onFailure]).toEqual([
      'event-loop-delay',
      'ms',
      20,
      200,
      'ignore',
    ]);
  });

  it('reports the lateness: an idle loop (every interval equal to the resolution) reads 0, a block its length', () => {
    const { clock, hist, signal } = setup({ intervalMs: 250 });
    signal.start!();
    clock.advance(250);
    hist.values = [0, 0, 0, 0, 0]; // recorded: 50 ms each
    expect(signal.sample(clock.now())).toBe(0);
    clock.advance(250);
    hist.values = [0, 0, 300]; // recorded: 50, 50, 350 ms: the timer ran 300 ms late
    expect(signal.sample(clock.now())).toBe(300);
  });

  it('reports the p99 of the interval in ms and resets the histogram each sample', () => {
    const { clock, hist, signal, resolution } = setup({ intervalMs: 100 });
    signal.start!();
    expect(hist.enabled).toBe(true);
    expect(resolution()).toBe(50);
    clock.advance(100);
    hist.values = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100 ms
    expect(signal.sample(clock.now())).toBe(99);
    expect(hist.resets).toBe(1);
    clock.advance(100);
    hist.values = [3, 4, 5];
    expect(signal.sample(clock.now())).toBe(5);
  });

  it("reports the maximum with percentile 'max', and other percentiles", () => {
    const a = setup({ percentile: 'max', intervalMs: 100 });
    a.signal.start!();
    a.clock.advance(100);
    a.hist.values = [...Array<number>(1000).fill(1), 70];
    expect(a.signal.sample(a.clock.now())).toBe(70);
    const b = setup({ percentile: 50, intervalMs: 100 });
    b.signal.start!();
    b.clock.advance(100);
    b.hist.values = [1, 2, 3, 4, 100];
    expect(b.signal.sample(b.clock.now())).toBe(3);
  });

  it('reports a blocked loop from an empty histogram: elapsed minus the resolution, never 0', () => {
    const { clock, hist, signal } = setup({ resolutionMs: 10 });
    signal.start!();
    clock.advance(300);
    // Right after start Node skips the first delay: two resolutions may pass unrecorded.
    expect(signal.sample(clock.now())).toBe(280);
    clock.advance(100);
    hist.values = [1, 1];
    expect(signal.sample(clock.now())).toBe(1);
    clock.advance(250);
    expect(hist.count).toBe(0);
    expect(signal.sample(clock.now())).toBe(240);
  });

  it('reports a late sample as at least its lateness when the histogram missed the block', () => {
    const { clock, hist, signal } = setup({ intervalMs: 100 });
    signal.start!();
    clock.advance(100);
    hist.values = [2];
    signal.sample(clock.now());
    // The loop was blocked 400 ms; the histogram's timer ran once after it, recording little.
    clock.advance(500);
    hist.values = [1];
    expect(signal.sample(clock.now())).toBe(400);
  });

  it('learns the interval as the median gap between samples when intervalMs is not given', () => {
    const { clock, hist, signal } = setup();
    signal.start!();
    clock.advance(5); // the gap from start() is not an interval
    hist.values = [1];
    signal.sample(clock.now());
    for (let i = 0; i < 5; i++) {
      clock.advance(200);
      hist.values = [1];
      expect(signal.sample(clock.now())).toBe(1);
    }
    clock.advance(2); // one irregular early sample does not teach a 2 ms interval
    hist.values = [1];
    signal.sample(clock.now());
    clock.advance(200);
    hist.values = [1];
    expect(signal.sample(clock.now())).toBe(1);
    clock.advance(700);
    hist.values = [1];
    expect(signal.sample(clock.now())).toBe(500);
  });

  it('keeps the previous reading for two samples at one instant, without losing the histogram', () => {
    const { clock, hist, signal } = setup({ intervalMs: 100 });
    signal.start!();
    clock.advance(100);
    hist.values = [7];
    expect(signal.sample(clock.now())).toBe(7);
    hist.values = [30];
    expect(signal.sample(clock.now())).toBe(7);
    expect(hist.count).toBe(1);
  });

  it('falls back to the gap bound when no histogram can be created', () => {
    const clock = new ManualClock();
    const signal = eventLoopDelay({
      clock,
      intervalMs: 100,
      createHistogram: () => {
        throw new Error('unsupported');
      },
    });
    signal.start!();
    clock.advance(100);
    expect(signal.sample(clock.now())).toBe(0);
    clock.advance(350);
    expect(signal.sample(clock.now())).toBe(250);
  });

  it('starts on first sample if needed, and stop() disables the histogram (idempotent)', () => {
    const { clock, hist, signal } = setup();
    clock.advance(50);
    expect(signal.sample(clock.now())).toBe(0);
    expect(hist.enabled).toBe(true);
    signal.stop!();
    signal.stop!();
    expect(hist.enabled).toBe(false);
  });

  it('always returns a finite number >= 0', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            gap: fc.double({ min: 0, max: 5000, noNaN: true }),
            delays: fc.array(fc.double({ min: 0, max: 10_000, noNaN: true }), { maxLength: 20 }),
          }),
          { maxLength: 40 },
        ),
        fc.constantFrom<number | 'max'>(50, 99, 99.9, 'max'),
        (steps, percentile) => {
          const { clock, hist, signal } = setup({ percentile });
          signal.start!();
          for (const step of steps) {
            clock.advance(step.gap);
            hist.values = step.delays;
            const v = signal.sample(clock.now());
            expect(Number.isFinite(v) && v >= 0).toBe(true);
          }
        },
      ),
    );
  });

  it('rejects invalid options with a ConfigError naming the option', () => {
    const bad: Array<[Parameters<typeof eventLoopDelay>[0], string]> = [
      [{ targetMs: 100, limitMs: 100 }, 'limitMs'],
      [{ targetMs: 300 }, 'limitMs'],
      [{ targetMs: -1 }, 'targetMs'],
      [{ limitMs: Number.POSITIVE_INFINITY }, 'limitMs'],
      [{ percentile: 0 }, 'percentile'],
      [{ percentile: 101 }, 'percentile'],
      [{ percentile: 'p99' as 'max' }, 'percentile'],
      [{ resolutionMs: 0.5 }, 'resolutionMs'],
      [{ intervalMs: 0 }, 'intervalMs'],
      [{ onFailure: 'fail' as 'ignore' }, 'onFailure'],
      [{ targetMS: 5 } as Parameters<typeof eventLoopDelay>[0], 'eventLoopDelay.targetMS'],
    ];
    for (const [options, option] of bad) {
      let err: unknown;
      try {
        eventLoopDelay(options);
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err), JSON.stringify(options)).toBe(true);
      expect((err as { option: string }).option).toBe(option);
    }
  });
});
