import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock.js';
import { boundKey, createLimiter, MAX_KEY_BYTES } from '../../../src/limiters/keyed-limiter.js';

describe('key size is bounded', () => {
  it('keeps keys up to 256 bytes, and replaces longer ones by a fixed-size digest', () => {
    expect(boundKey('user:1')).toBe('user:1');
    const atLimit = 'a'.repeat(MAX_KEY_BYTES);
    expect(boundKey(atLimit)).toBe(atLimit);
    const long = 'a'.repeat(MAX_KEY_BYTES + 1);
    const d = boundKey(long);
    expect(d).not.toBe(long);
    expect(d.length).toBeLessThan(60);
    expect(boundKey('b'.repeat(65_536))).toHaveLength(d.length);
    // Bytes, not characters: 100 three-byte characters are 300 bytes.
    expect(boundKey('€'.repeat(100))).not.toBe('€'.repeat(100));
    expect(boundKey('€'.repeat(85))).toBe('€'.repeat(85));
  });

  it('a long key still has its own bucket, shared by every request with the same key', () => {
    const limiter = createLimiter({ ratePerSec: 1, burst: 2, clock: new ManualClock() });
    const a = `${'x'.repeat(64 * 1024)}a`;
    const b = `${'x'.repeat(64 * 1024)}b`;
    expect(limiter.take(a).allowed).toBe(true);
    expect(limiter.take(a).allowed).toBe(true);
    expect(limiter.take(a).allowed).toBe(false);
    expect(limiter.take(b).allowed).toBe(true);
    expect(limiter.size).toBe(2);
    limiter.delete(a);
    expect(limiter.take(a).allowed).toBe(true);
  });
});
