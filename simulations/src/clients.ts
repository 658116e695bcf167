/**
 * The simulated clients: one source per tenant of each traffic spec, sending open-loop arrivals
 * (Poisson by thinning, or evenly spaced) at the spec's rate pattern, each request with a priority
 * drawn from the spec's mix, a timeout after which the client gives up (aborting a wait in the
 * pipeline), and retries with backoff, jitter, an optional retry budget and Retry-After.
 */
import type { ManualClock, Priority } from 'spillway';
import type { SimRequest } from './protection.js';
import { deriveRandom, type Random } from './random.js';
import type { Recorder } from './recorder.js';
import { type PriorityClass, peakRate, rateAt, type Scenario, type TrafficSpec } from './scenario.js';

interface Source {
  readonly spec: TrafficSpec;
  readonly tenant: string;
  readonly arrivals: Random;
  readonly draws: Random;
  readonly peak: number;
  budget: number;
  readonly budgetCap: number;
}

/** One request sent by a client (a first attempt or a retry), until it is answered. */
export interface Attempt {
  readonly source: Source;
  /** The request as the pipeline sees it (the same object from run to release or refund). */
  readonly req: SimRequest;
  /** Aborts a wait in the pipeline when the client gives up (set when the pipeline waits). */
  readonly abort: AbortController | undefined;
  readonly priority: PriorityClass;
  readonly sentAt: number;
  readonly deadline: number;
  readonly attempt: number;
  answered: boolean;
  gaveUp: boolean;
}

export interface ClientsOptions {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly clock: ManualClock;
  readonly recorder: Recorder;
  /** True when the pipeline may make a request wait: each request then carries an abort signal. */
  readonly waits: boolean;
  /** Hands a sent request to the server. */
  readonly arrive: (a: Attempt) => void;
}

export class Clients {
  readonly #o: ClientsOptions;
  readonly #durationMs: number;
  readonly #sources: Source[] = [];

  constructor(options: ClientsOptions) {
    this.#o = options;
    this.#durationMs = options.scenario.durationSec * 1000;
    for (const spec of options.scenario.traffic) {
      for (let k = 0; k < spec.tenants; k++) {
        const tenant = spec.tenants > 1 ? `${spec.tenant}-${k + 1}` : spec.tenant;
        const label = `${spec.name}#${k}`;
        const peak = peakRate(spec.pattern);
        const ratio = spec.retry?.budgetRatio ?? 0;
        this.#sources.push({
          spec,
          tenant,
          arrivals: deriveRandom(options.seed, `arrivals:${label}`),
          draws: deriveRandom(options.seed, `draws:${label}`),
          peak,
          budget: 10,
          budgetCap: 10 + ratio * peak * 10,
        });
        options.recorder.addTenant(tenant);
      }
    }
  }

  /** Schedules every source's first arrival. */
  start(): void {
    for (const s of this.#sources) this.#scheduleArrival(s, 0);
  }

  /**
   * A refused (or timed-out, `retryAfterMs` 0) attempt: its client retries if its spec says so,
   * within its attempts and its retry budget, after its backoff (or Retry-After, if it honours it).
   */
  retry(a: Attempt, retryAfterMs: number): void {
    const r = a.source.spec.retry;
    if (r === undefined || a.attempt >= r.maxAttempts) return;
    const s = a.source;
    if (r.budgetRatio !== null) {
      if (s.budget < 1) return;
      s.budget -= 1;
    }
    const backoff =
      r.backoffMs * r.backoffMultiplier ** (a.attempt - 1) * (1 + r.jitter * (2 * s.draws() - 1));
    const delay = Math.min(r.maxDelayMs, r.honourRetryAfter ? Math.max(retryAfterMs, backoff) : backoff);
    const clock = this.#o.clock;
    if (clock.now() + delay >= this.#durationMs) return;
    clock.setTimeout(() => this.#send(s, a.priority, a.attempt + 1), delay);
  }

  #pickPriority(s: Source): PriorityClass {
    const p = s.spec.priorities;
    const u = s.draws();
    if (u < p.critical) return 'critical';
    if (u < p.critical + p.normal) return 'normal';
    return 'sheddable';
  }

  /** The next arrival time after `tMs` (ms), or Infinity: thinning for Poisson, spacing for uniform. */
  #nextArrival(s: Source, tMs: number): number {
    const { spec } = s;
    const endMs = Math.min(spec.endSec * 1000, this.#durationMs);
    let t = Math.max(tMs, spec.startSec * 1000);
    if (spec.arrivals === 'poisson') {
      for (;;) {
        t += (-Math.log(1 - s.arrivals()) / s.peak) * 1000;
        if (t >= endMs) return Infinity;
        if (s.arrivals() * s.peak < rateAt(spec.pattern, t / 1000)) return t;
      }
    }
    for (;;) {
      const r = rateAt(spec.pattern, t / 1000);
      if (r > 0) {
        t += 1000 / r;
        return t >= endMs ? Infinity : t;
      }
      t += 100;
      if (t >= endMs) return Infinity;
    }
  }

  #scheduleArrival(s: Source, fromMs: number): void {
    const t = this.#nextArrival(s, fromMs);
    if (t === Infinity) return;
    const clock = this.#o.clock;
    clock.setTimeout(() => {
      this.#send(s, this.#pickPriority(s), 1);
      this.#scheduleArrival(s, t);
    }, t - clock.now());
  }

  #send(source: Source, priority: PriorityClass, attempt: number): void {
    const { clock, recorder, waits } = this.#o;
    const now = clock.now();
    const abort = waits ? new AbortController() : undefined;
    const req: SimRequest = { key: source.tenant, priority: priority as Priority, cost: source.spec.cost };
    if (abort !== undefined) req.signal = abort.signal;
    const a: Attempt = {
      source,
      req,
      abort,
      priority,
      sentAt: now,
      deadline: now + source.spec.timeoutMs,
      attempt,
      answered: false,
      gaveUp: false,
    };
    recorder.sent(source.tenant, priority, attempt, now);
    if (attempt === 1) {
      const ratio = source.spec.retry?.budgetRatio;
      if (ratio != null) source.budget = Math.min(source.budgetCap, source.budget + ratio);
    }
    const retry = source.spec.retry;
    if (retry?.onTimeout || abort !== undefined) {
      // The client gives up: it closes the connection, which aborts a wait in the pipeline (as the
      // guard does on 'close'), and retries if it does so on timeouts.
      clock.setTimeout(() => {
        if (a.answered) return;
        a.gaveUp = true;
        abort?.abort();
        if (retry?.onTimeout) this.retry(a, 0);
      }, source.spec.timeoutMs);
    }
    this.#o.arrive(a);
  }
}
