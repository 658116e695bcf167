import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  defaultProblem,
  defaultProblemBody,
  formatPolicy,
  formatRateLimit,
  PROBLEM_TYPES,
  retryAfterSeconds,
  sfString,
} from '../../src/adapters/headers.js';
import { isConfigError } from '../../src/errors.js';
import { parseList } from './structured-fields.js';

describe('retryAfterSeconds', () => {
  const fixed = (u: number) => () => u;
  it('rounds up to whole seconds, at least 1, capped at maxSec', () => {
    const o = { maxSec: 60, jitter: 0, random: fixed(0) };
    expect(retryAfterSeconds(0, o)).toBe(1);
    expect(retryAfterSeconds(1, o)).toBe(1);
    expect(retryAfterSeconds(1000, o)).toBe(1);
    expect(retryAfterSeconds(1001, o)).toBe(2);
    expect(retryAfterSeconds(120_000, o)).toBe(60);
    expect(retryAfterSeconds(Infinity, o)).toBe(60);
  });
  it('spreads by jitter in whole seconds: u = 0 gives the base, u → 1 gives base + ceil(base · jitter)', () => {
    expect(retryAfterSeconds(4000, { maxSec: 60, jitter: 0.5, random: fixed(0) })).toBe(4);
    expect(retryAfterSeconds(4000, { maxSec: 60, jitter: 0.5, random: fixed(0.999) })).toBe(6);
    expect(retryAfterSeconds(4000, { maxSec: 60, jitter: 0.5, random: fixed(0.5) })).toBe(5);
    expect(retryAfterSeconds(1000, { maxSec: 60, jitter: 0.5, random: fixed(0.49) })).toBe(1);
    expect(retryAfterSeconds(1000, { maxSec: 60, jitter: 0.5, random: fixed(0.5) })).toBe(2);
    // a broken random source cannot push it out of bounds
    expect(retryAfterSeconds(4000, { maxSec: 60, jitter: 0.5, random: fixed(7) })).toBe(4);
    expect(retryAfterSeconds(4000, { maxSec: 60, jitter: 0.5, random: fixed(Number.NaN) })).toBe(4);
  });
  it('stays an integer within [base, base + ceil(base·jitter)] (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e7, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        fc.integer({ min: 1, max: 3600 }),
        (ms, jitter, u, maxSec) => {
          const base = Math.min(maxSec, Math.max(1, Math.ceil(ms / 1000)));
          const s = retryAfterSeconds(ms, { maxSec, jitter, random: () => u });
          expect(Number.isInteger(s)).toBe(true);
          expect(s).toBeGreaterThanOrEqual(base);
          expect(s).toBeLessThanOrEqual(base + Math.ceil(base * jitter));
        },
      ),
    );
  });
  it('actually spreads: different draws give different seconds', () => {
    const seen = new Set<number>();
    for (let k = 0; k < 11; k++)
      seen.add(retryAfterSeconds(10_000, { maxSec: 60, jitter: 1, random: fixed(k / 11) }));
    expect(seen.size).toBe(11);
  });
  it('clients shed together come back spread uniformly over the whole seconds (seeded, chi-square)', () => {
    // mulberry32: a small seeded generator, so the test is exact and repeatable.
    const seeded = (seed: number) => () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
    const cases = [
      { ms: 1, jitter: 0.5, values: [1, 2] },
      { ms: 800, jitter: 1, values: [1, 2] },
      { ms: 2000, jitter: 0.5, values: [2, 3] },
      { ms: 4000, jitter: 0.5, values: [4, 5, 6] },
      { ms: 10_000, jitter: 0.5, values: [10, 11, 12, 13, 14, 15] },
    ];
    const n = 6000;
    for (const c of cases) {
      const random = seeded(42);
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const s = retryAfterSeconds(c.ms, { maxSec: 60, jitter: c.jitter, random });
        counts.set(s, (counts.get(s) ?? 0) + 1);
      }
      expect(
        [...counts.keys()].sort((a, b) => a - b),
        `${c.ms} ms`,
      ).toEqual(c.values);
      // Chi-square against the uniform distribution; the 0.1% critical value for k−1 ≤ 5
      // degrees of freedom is at most 20.5.
      const expected = n / c.values.length;
      let chi2 = 0;
      for (const v of c.values) chi2 += (counts.get(v)! - expected) ** 2 / expected;
      expect(chi2, `${c.ms} ms: ${JSON.stringify([...counts])}`).toBeLessThan(20.5);
    }
  });
});

describe('RateLimit fields', () => {
  it('formats the draft examples exactly', () => {
    const name = sfString('policyName', 'default');
    expect(formatPolicy(name, 100, 60)).toBe('"default";q=100;w=60');
    expect(formatPolicy(name, 100, undefined)).toBe('"default";q=100');
    expect(formatRateLimit(name, 42, 3)).toBe('"default";r=42;t=3');
  });
  it('writes non-negative integers: floors remaining and quota, ceils reset and window', () => {
    const name = sfString('p', 'p');
    expect(formatPolicy(name, 7.9, 0.2)).toBe('"p";q=7;w=1');
    expect(formatRateLimit(name, 0.99, 2.01)).toBe('"p";r=0;t=3');
    expect(formatRateLimit(name, -3, -1)).toBe('"p";r=0;t=0');
  });
  it('escapes names and parses back as a structured-field list (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) }),
        fc.nat(),
        fc.nat(100_000),
        (n, r, t) => {
          const q = sfString('policyName', n);
          const [m] = parseList(formatRateLimit(q, r, t));
          expect(m).toEqual({ value: n, params: { r, t } });
        },
      ),
    );
  });
  it('refuses names that are not printable ASCII', () => {
    expect(() => sfString('policyName', 'é')).toThrow(/policyName/);
    expect(() => sfString('policyName', 'a\nb')).toThrow(/policyName/);
    try {
      sfString('policyName', 3);
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
    }
  });
});

describe('problem details', () => {
  it('fast bodies equal the serialised default problems', () => {
    for (const status of [429, 503] as const) {
      for (const sec of [1, 7, 60]) {
        for (const name of ['default', 'a "quoted" \\ name']) {
          expect(JSON.parse(defaultProblemBody(status, sec, JSON.stringify(name)))).toEqual(
            defaultProblem(status, sec, name),
          );
        }
      }
    }
  });
  it('uses the draft problem types and RFC 9457 members', () => {
    const p = defaultProblem(429, 3, 'default');
    expect(p).toMatchObject({ type: PROBLEM_TYPES.quotaExceeded, status: 429, retryAfter: 3 });
    expect(p['violated-policies']).toEqual(['default']);
    expect(typeof p.title).toBe('string');
    expect(p.detail).toContain('3 s');
    const q = defaultProblem(503, 2, 'default');
    expect(q.type).toBe('https://iana.org/assignments/http-problem-types#temporary-reduced-capacity');
    expect(q).not.toHaveProperty('violated-policies');
  });
});
