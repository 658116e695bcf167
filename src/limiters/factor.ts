import { ratio } from '../validate.js';
import { effectiveFactor } from './priority.js';
import type { FactorSource, Priority } from './types.js';

/**
 * A FactorSource that holds its factor and tells every subscriber of each change. A subscriber
 * that throws does not stop the others from hearing it. Subclasses decide when the factor moves
 * and call `publish`.
 */
export abstract class FactorBroadcast implements FactorSource {
  #factor: number;
  readonly #listeners = new Set<(factor: number) => void>();

  constructor(factor: number) {
    this.#factor = factor;
  }

  get factor(): number {
    return this.#factor;
  }

  factorFor(priority: Priority): number {
    return effectiveFactor(this.#factor, priority);
  }

  subscribe(listener: (factor: number) => void): () => void {
    // Each subscription gets its own entry, so the same function subscribed twice is called twice
    // and unsubscribing one leaves the other.
    const entry = (f: number) => listener(f);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Sets the factor and tells every subscriber, if it changed. */
  protected publish(factor: number): void {
    if (factor === this.#factor) return;
    this.#factor = factor;
    for (const l of this.#listeners) {
      try {
        l(factor);
      } catch {
        // A subscriber's bug must not stop the others from hearing the change.
      }
    }
  }
}

/**
 * A factor you set by hand: for tests, for a static limit, or to drive limiters from your own
 * controller. A Governor is the adaptive FactorSource.
 */
export class ManualFactor extends FactorBroadcast {
  constructor(factor = 1) {
    super(ratio('factor', factor));
  }

  /** Sets the factor (from 0 to 1) and tells every subscriber. */
  set(factor: number): void {
    this.publish(ratio('factor', factor));
  }
}
