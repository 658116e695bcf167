/**
 * A circuit breaker so that a dead Redis costs requests no waiting. After `failureThreshold`
 * failures in a row it opens: calls go straight to the failure policy. After `openMs` one call is
 * let through as a probe (half-open); its success closes the circuit, its failure opens it again.
 * No timer: the probe is the next decision that arrives, so an idle store does no work.
 */
import type { Clock } from '../../clock.js';

export type BreakerState =
  | { readonly kind: 'closed'; readonly failures: number }
  | { readonly kind: 'open'; readonly untilMs: number }
  | { readonly kind: 'half-open' };

/** What the breaker lets a call do: go to Redis, go as the one probe, or not go at all. */
export type BreakerVerdict = 'call' | 'probe' | 'refuse';

export interface BreakerOptions {
  /** Failures in a row that open the circuit. @default 3 */
  readonly failureThreshold: number;
  /** How long the circuit stays open before a probe, in ms. @default 1000 */
  readonly openMs: number;
}

export class CircuitBreaker {
  readonly #clock: Clock;
  readonly #threshold: number;
  readonly #openMs: number;
  #state: BreakerState = { kind: 'closed', failures: 0 };
  #onChange: (from: BreakerState['kind'], to: BreakerState['kind']) => void;

  constructor(
    clock: Clock,
    options: BreakerOptions,
    onChange: (from: BreakerState['kind'], to: BreakerState['kind']) => void,
  ) {
    this.#clock = clock;
    this.#threshold = options.failureThreshold;
    this.#openMs = options.openMs;
    this.#onChange = onChange;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Ms until the next probe may go (0 unless open). */
  msUntilProbe(): number {
    const s = this.#state;
    return s.kind === 'open' ? Math.max(0, s.untilMs - this.#clock.now()) : 0;
  }

  verdict(): BreakerVerdict {
    const s = this.#state;
    if (s.kind === 'closed') return 'call';
    if (s.kind === 'open' && this.#clock.now() >= s.untilMs) {
      this.#set({ kind: 'half-open' });
      return 'probe';
    }
    return 'refuse';
  }

  success(): void {
    const s = this.#state;
    if (s.kind === 'closed' && s.failures === 0) return;
    this.#set({ kind: 'closed', failures: 0 });
  }

  failure(): void {
    const s = this.#state;
    if (s.kind === 'closed' && s.failures + 1 < this.#threshold) {
      this.#state = { kind: 'closed', failures: s.failures + 1 };
      return;
    }
    // A late failure of a call sent before the circuit opened must not push the probe back.
    if (s.kind === 'open') return;
    this.#set({ kind: 'open', untilMs: this.#clock.now() + this.#openMs });
  }

  #set(next: BreakerState): void {
    const from = this.#state.kind;
    this.#state = next;
    if (from !== next.kind) this.#onChange(from, next.kind);
  }
}
