import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { CircuitBreaker } from '../../../src/stores/redis/breaker.js';

function breaker(clock: ManualClock, changes: string[] = []) {
  return new CircuitBreaker(clock, { failureThreshold: 3, openMs: 1000 }, (from, to) =>
    changes.push(`${from}->${to}`),
  );
}

describe('CircuitBreaker', () => {
  it('opens after the threshold of failures in a row, not before', () => {
    const clock = new ManualClock();
    const b = breaker(clock);
    b.failure();
    b.failure();
    expect(b.verdict()).toBe('call');
    b.success(); // a success in between starts the count again
    b.failure();
    b.failure();
    expect(b.verdict()).toBe('call');
    b.failure();
    expect(b.state.kind).toBe('open');
    expect(b.verdict()).toBe('refuse');
    expect(b.msUntilProbe()).toBe(1000);
  });

  it('lets exactly one probe through after openMs; its success closes the circuit', () => {
    const clock = new ManualClock();
    const changes: string[] = [];
    const b = breaker(clock, changes);
    for (let i = 0; i < 3; i++) b.failure();
    clock.advance(999);
    expect(b.verdict()).toBe('refuse');
    clock.advance(1);
    expect(b.verdict()).toBe('probe');
    expect(b.verdict()).toBe('refuse'); // the probe is in flight
    b.success();
    expect(b.verdict()).toBe('call');
    expect(changes).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
  });

  it('a failed probe opens the circuit for another openMs', () => {
    const clock = new ManualClock();
    const b = breaker(clock);
    for (let i = 0; i < 3; i++) b.failure();
    clock.advance(1000);
    expect(b.verdict()).toBe('probe');
    b.failure();
    expect(b.state.kind).toBe('open');
    expect(b.msUntilProbe()).toBe(1000);
  });

  it('late failures of calls sent before it opened do not push the probe back', () => {
    const clock = new ManualClock();
    const b = breaker(clock);
    for (let i = 0; i < 3; i++) b.failure();
    clock.advance(600);
    b.failure();
    b.failure();
    expect(b.msUntilProbe()).toBe(400);
  });
});
