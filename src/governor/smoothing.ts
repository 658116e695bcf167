/**
 * Exponential smoothing weighted by elapsed time, not by sample count.
 *
 * s ← s + α·(x − s),  α = 1 − e^(−Δt/τ)
 *
 * Under load the sampling timer fires late, so ticks are irregular. With a fixed α a late tick
 * would weigh a long interval like a short one. With α from Δt, n updates of a constant input x
 * leave s = x + (s₀ − x)·Π(1 − αᵢ) = x + (s₀ − x)·e^(−ΣΔtᵢ/τ): the result depends only on the
 * total elapsed time, whatever the tick pattern. τ is the time constant: after τ of a step the
 * smoothed value has covered 63% of it, after 3τ 95%.
 */

/** The weight of a new sample that covers `dtMs`, from 0 to 1. `dtMs <= 0` gives 0 (no time, no change). */
export function ewmaAlpha(dtMs: number, tauMs: number): number {
  if (!(dtMs > 0)) return 0;
  // -expm1(-x) = 1 − e^(−x), accurate for small x.
  return -Math.expm1(-dtMs / tauMs);
}

/** A time-weighted EWMA. Starts at `initial` (default 0: an idle process). */
export class TimeEwma {
  readonly tauMs: number;
  #value: number;

  constructor(tauMs: number, initial = 0) {
    this.tauMs = tauMs;
    this.#value = initial;
  }

  get value(): number {
    return this.#value;
  }

  /** Folds in `sample`, which held for the `dtMs` just ended. Returns the new smoothed value. */
  update(sample: number, dtMs: number): number {
    this.#value += ewmaAlpha(dtMs, this.tauMs) * (sample - this.#value);
    return this.#value;
  }

  reset(value = 0): void {
    this.#value = value;
  }
}
