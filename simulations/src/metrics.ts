/** The report's arithmetic, as pure functions (tested on their own). */

/** The q-quantile (0..1) of ascending-sorted `sorted` by the nearest-rank method; NaN when empty. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1]!;
}

/**
 * Jain's fairness index (Σx)² / (n·Σx²): 1 when every x is equal, 1/n when one takes everything.
 * Null when there is nothing to compare (no values, or all zero).
 */
export function jainIndex(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  // Scaled by the largest value, so that tiny values do not underflow when squared.
  const max = Math.max(...xs);
  if (!(max > 0)) return null;
  let s = 0;
  let s2 = 0;
  for (const v of xs) {
    const x = v / max;
    s += x;
    s2 += x * x;
  }
  return (s * s) / (xs.length * s2);
}

/**
 * Max-min fair shares of `capacity` among `demands` (water filling): every demand below the fair
 * level gets all it asks; the rest split what is left equally.
 */
export function maxMinFairShares(demands: readonly number[], capacity: number): number[] {
  const shares = demands.map(() => 0);
  const order = demands.map((d, i) => [d, i] as const).sort((a, b) => a[0] - b[0]);
  let left = capacity;
  let n = demands.length;
  for (const [d, i] of order) {
    const level = left / n;
    const give = Math.min(d, level);
    shares[i] = give;
    left -= give;
    n--;
  }
  return shares;
}

/** A factor-change event: time and new factor. */
export interface FactorPoint {
  readonly atMs: number;
  readonly factor: number;
}

/** How many times the factor turned (a cut after a rise or a rise after a cut). */
export function directionChanges(points: readonly FactorPoint[], initial = 1): number {
  let prev = initial;
  let dir = 0;
  let changes = 0;
  for (const p of points) {
    const d = Math.sign(p.factor - prev);
    prev = p.factor;
    if (d === 0) continue;
    if (dir !== 0 && d !== dir) changes++;
    dir = d;
  }
  return changes;
}

/** The factor in force at `tMs`, given the change points (ascending) and the factor before them. */
export function factorAt(points: readonly FactorPoint[], tMs: number, initial = 1): number {
  let f = initial;
  for (const p of points) {
    if (p.atMs > tMs) break;
    f = p.factor;
  }
  return f;
}

/**
 * Shedding switches on (factor falls below 1) or off (back to 1) within [fromMs, toMs]: each
 * crossing counts once. An overload handled cleanly is 2: on at the start, off after it.
 */
export function onOffSwitches(
  points: readonly FactorPoint[],
  fromMs: number,
  toMs: number,
  initial = 1,
): number {
  let on = factorAt(points, fromMs, initial) < 1;
  let n = 0;
  for (const p of points) {
    if (p.atMs <= fromMs) continue;
    if (p.atMs > toMs) break;
    const now = p.factor < 1;
    if (now !== on) n++;
    on = now;
  }
  return n;
}

/** Maximal runs of indices where `flags` is true, as [start, end) pairs. */
export function runs(flags: readonly boolean[]): [number, number][] {
  const out: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= flags.length; i++) {
    const f = i < flags.length && flags[i];
    if (f && start < 0) start = i;
    if (!f && start >= 0) {
      out.push([start, i]);
      start = -1;
    }
  }
  return out;
}
