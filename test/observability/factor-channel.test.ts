import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { createGovernor } from '../../src/governor/index.js';
import type { DecisionRecord } from '../../src/governor/governor.js';
import { FACTOR_CHANNEL, type FactorMessage } from '../../src/observability/channels.js';
import { scripted } from '../governor/helpers.js';

describe('the governor on FACTOR_CHANNEL', () => {
  it('publishes every factor change once, as the change event reports it, with the governor', () => {
    const clock = new ManualClock();
    let p = 0;
    const governor = createGovernor({
      clock,
      warmupMs: 0,
      cutIntervalMs: 0,
      signals: [scripted('load', () => p)],
    });
    const published: FactorMessage[] = [];
    const emitted: DecisionRecord[] = [];
    const onMessage = (m: unknown) => published.push(m as FactorMessage);
    subscribe(FACTOR_CHANNEL, onMessage);
    try {
      governor.on('change', (r) => emitted.push(r));
      governor.start();
      p = 0.95;
      clock.advance(3000);
      p = 0;
      clock.advance(30_000);
      governor.stop();
    } finally {
      unsubscribe(FACTOR_CHANNEL, onMessage);
    }
    expect(emitted.length).toBeGreaterThan(3);
    expect(published.length).toBe(emitted.length);
    published.forEach((m, i) => {
      const { governor: g, ...record } = m;
      expect(g).toBe(governor);
      expect(record).toEqual(emitted[i]);
      expect(m.factor).not.toBe(m.previousFactor);
    });
    expect(published.some((m) => m.factor < m.previousFactor && m.reason.startsWith('engaged:'))).toBe(true);
  });

  it('publishes without any change listener, and nothing once unsubscribed', () => {
    const clock = new ManualClock();
    let p = 0.95;
    const governor = createGovernor({
      clock,
      warmupMs: 0,
      cutIntervalMs: 0,
      signals: [scripted('load', () => p)],
    });
    let count = 0;
    const onMessage = () => count++;
    subscribe(FACTOR_CHANNEL, onMessage);
    governor.start();
    clock.advance(2000);
    const seen = count;
    expect(seen).toBeGreaterThan(0);
    unsubscribe(FACTOR_CHANNEL, onMessage);
    p = 0;
    clock.advance(30_000);
    expect(governor.factor).toBe(1);
    expect(count).toBe(seen);
    governor.stop();
  });
});
