import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import type { FactorOption } from '../../src/limiters/factor-option.js';
import { FixedWindow } from '../../src/limiters/fixed-window.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { LeakyBucket } from '../../src/limiters/leaky-bucket.js';
import { Shedder } from '../../src/limiters/shedder.js';
import { SlidingWindowCounter, SlidingWindowLog } from '../../src/limiters/sliding-window.js';
import { TokenBucket } from '../../src/limiters/token-bucket.js';

interface Followable {
  readonly factor: number;
  close(): void;
}

const makers: [string, (factor: FactorOption, clock: ManualClock) => Followable][] = [
  ['TokenBucket', (factor, clock) => new TokenBucket({ ratePerSec: 1, burst: 1, clock, factor })],
  ['FixedWindow', (factor, clock) => new FixedWindow({ limit: 1, windowMs: 1000, clock, factor })],
  [
    'SlidingWindowCounter',
    (factor, clock) => new SlidingWindowCounter({ limit: 1, windowMs: 1000, clock, factor }),
  ],
  ['SlidingWindowLog', (factor, clock) => new SlidingWindowLog({ limit: 1, windowMs: 1000, clock, factor })],
  ['LeakyBucket', (factor, clock) => new LeakyBucket({ ratePerSec: 1, capacity: 1, clock, factor })],
  ['KeyedLimiter', (factor, clock) => createLimiter({ ratePerSec: 1, burst: 1, clock, factor })],
];

describe('one factor contract: `factor?: FactorSource | number` on every limiter', () => {
  for (const [name, make] of makers) {
    it(`${name} takes a fixed number, follows a source until close(), and refuses anything else`, () => {
      const clock = new ManualClock();
      expect(make(0.25, clock).factor).toBe(0.25);
      const source = new ManualFactor(0.5);
      const l = make(source, clock);
      expect(l.factor).toBe(0.5);
      source.set(0.2);
      expect(l.factor).toBe(0.2);
      l.close();
      source.set(1);
      expect(l.factor).toBe(0.2);
      for (const bad of [2, -1, Number.NaN, '0.5', {}]) {
        let err: unknown;
        try {
          make(bad as never, clock);
        } catch (e) {
          err = e;
        }
        expect(isConfigError(err)).toBe(true);
        expect((err as Error).message).toMatch(/`factor/);
      }
    });
  }

  it('Shedder takes a source or a fixed number', () => {
    const clock = new ManualClock();
    const fixed = new Shedder({ factor: 0.5, clock });
    expect(fixed.state.mode).toBe('limiting');
    const source = new ManualFactor(1);
    const s = new Shedder({ factor: source, clock });
    expect(s.state.mode).toBe('learning');
    expect(() => new Shedder({ factor: 3, clock })).toThrow(/factor/);
  });
});
