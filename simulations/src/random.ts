/**
 * Seeded randomness for the simulator: a mulberry32 generator and the distributions the model
 * draws from. Same seed, same stream, on every machine: a simulation is reproducible bit for bit.
 */

/** A seeded uniform generator on [0, 1). */
export type Random = () => number;

/** mulberry32: a 32-bit state, a period of 2^32, good enough statistics for a load model and fast. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An independent stream derived from a seed and a label, so that adding a traffic source or a
 * tenant does not shift the random numbers every other part of the model draws.
 */
export function deriveRandom(seed: number, label: string): Random {
  // FNV-1a over the label, mixed with the seed.
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return mulberry32(h);
}

/** A positive duration distribution, in ms. */
export type Distribution =
  | { readonly kind: 'constant'; readonly ms: number }
  | { readonly kind: 'exponential'; readonly meanMs: number }
  /** Lognormal with the given mean and coefficient of variation (stddev / mean). */
  | { readonly kind: 'lognormal'; readonly meanMs: number; readonly cv: number }
  /** Pareto (type I) with the given mean and tail index `alpha` > 1 (smaller is heavier). */
  | { readonly kind: 'pareto'; readonly meanMs: number; readonly alpha: number };

/** The mean of a distribution, in ms. */
export function meanOf(d: Distribution): number {
  return d.kind === 'constant' ? d.ms : d.meanMs;
}

/** A sampler for `d`, drawing from `random`. */
export function sampler(d: Distribution, random: Random): () => number {
  switch (d.kind) {
    case 'constant': {
      const ms = d.ms;
      return () => ms;
    }
    case 'exponential': {
      const mean = d.meanMs;
      return () => -mean * Math.log(1 - random());
    }
    case 'lognormal': {
      // mean = exp(mu + s²/2), cv² = exp(s²) − 1.
      const s2 = Math.log(1 + d.cv * d.cv);
      const s = Math.sqrt(s2);
      const mu = Math.log(d.meanMs) - s2 / 2;
      return () => Math.exp(mu + s * standardNormal(random));
    }
    case 'pareto': {
      // mean = alpha·xm/(alpha − 1)  →  xm = mean·(alpha − 1)/alpha; inverse CDF xm·U^(−1/alpha).
      const alpha = d.alpha;
      const xm = (d.meanMs * (alpha - 1)) / alpha;
      return () => xm * (1 - random()) ** (-1 / alpha);
    }
  }
}

/** A standard normal draw (Box–Muller, one of the pair). */
export function standardNormal(random: Random): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
