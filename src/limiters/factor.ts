import { ratio } from '../validate.js';
import { effectiveFactor } from './priority.js';
import type { FactorSource, Priority } from './types.js';

/**
 * A factor you set by hand: for tests, for a static limit, or to drive limiters from your own
 * controller. A Governor is the adaptive FactorSource.
 */
export class ManualFactor implements FactorSource {
  #factor: number;
  readonly #listeners = new Set<(factor: number) => void>();

  constructor(factor = 1) {
    this.#factor = ratio('factor', factor);
  }

  get factor(): number {
    return this.#factor;
  }

  factorFor(priority: Priority): number {
    return effectiveFactor(this.#factor, priority);
  }

  /** Sets the factor (from 0 to 1) and tells every subscriber. */
  set(factor: number): void {
    ratio('factor', factor);
    if (factor === this.#factor) return;
    this.#factor = factor;
    for (const l of this.#listeners) l(factor);
  }

  subscribe(listener: (factor: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
