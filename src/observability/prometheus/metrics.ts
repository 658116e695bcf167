/**
 * `createMetrics`: Spillway's Prometheus metrics on the registry the caller passes. Governors and
 * limiters are read at scrape time (an idle process pays nothing per request for its gauges);
 * decisions, responses and store trouble arrive on `node:diagnostics_channel` and are counted in
 * plain numbers. Names and labels are listed in docs/metrics.md.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Registry } from 'prom-client';
import { ConfigError } from '../../errors.js';
import type { GovernorState } from '../../governor/controller.js';
import type { DecisionRecord, Governor, GovernorSnapshot } from '../../governor/governor.js';
import { effectiveFactor } from '../../limiters/priority.js';
import { knownKeys } from '../../validate.js';
import {
  DECISION_CHANNEL,
  type DecisionMessage,
  RESPONSE_CHANNEL,
  type ResponseMessage,
  STORE_CHANNEL,
  type StoreCircuitState,
  type StoreMessage,
} from '../channels.js';
import { priorityLabel, RouteLabels } from '../labels.js';
import {
  CollectedFamily,
  CounterFamily,
  HistogramFamily,
  type Labels,
  type RegisteredMetric,
} from './family.js';

export interface MetricsOptions {
  /** The prom-client Registry to register on. Required: Spillway never registers on the global one by itself. */
  registry: Registry;
  /** Prepended to every metric name. @default 'spillway_' */
  prefix?: string;
  /** Distinct route labels kept; later routes count as 'other'. An integer from 0 to 10000. @default 50 */
  maxRoutes?: number;
  /** Bucket bounds of the queue-wait histogram, in seconds, ascending. @default QUEUE_WAIT_BUCKETS */
  queueWaitBuckets?: readonly number[];
  /** Bucket bounds of the decision-to-response histogram, in seconds, ascending. @default RESPONSE_BUCKETS */
  responseBuckets?: readonly number[];
  /** Count decisions, responses and store events from the diagnostics channels. @default true */
  channels?: boolean;
}

/** Queue waits are short by design (a CoDel-style target of a few ms to a few hundred). */
export const QUEUE_WAIT_BUCKETS = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);
/** prom-client's default buckets: request durations from 5 ms to 10 s. */
export const RESPONSE_BUCKETS = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

export const METRICS_DEFAULTS = Object.freeze({
  prefix: 'spillway_',
  maxRoutes: 50,
  queueWaitBuckets: QUEUE_WAIT_BUCKETS,
  responseBuckets: RESPONSE_BUCKETS,
  channels: true,
});

const OPTION_KEYS = [
  'registry',
  'prefix',
  'maxRoutes',
  'queueWaitBuckets',
  'responseBuckets',
  'channels',
] as const;

const STATES: readonly GovernorState[] = ['warming', 'idle', 'engaged', 'holding', 'recovering', 'stopped'];
const CIRCUIT_STATES: readonly StoreCircuitState[] = ['closed', 'open', 'half-open'];
const PRIORITY_CLASSES = ['critical', 'normal', 'sheddable'] as const;

/**
 * What `observeLimiter` reads at scrape time; every member is optional, but at least one must be
 * there. A guard has `inFlight` and `queued`; a pool guard `limit`, `inFlight`, `queued`; a keyed
 * limiter `size` and `factor`.
 */
export interface ObservableLimiter {
  /** Work admitted and not yet finished. */
  readonly inFlight?: number;
  /** Work waiting in a queue. */
  readonly queued?: number;
  /** Same as `queued`, for sources that call it so. */
  readonly queueLength?: number;
  /** Same as `queued`, for sources that call it so (the ConcurrencyLimiter). */
  readonly waiting?: number;
  /** The concurrency limit in force (adaptive limits change it). */
  readonly limit?: number;
  /** Keys held by a keyed limiter. */
  readonly size?: number;
  /** The factor the limiter applies, from 0 to 1. */
  readonly factor?: number;
}

export interface ObserveOptions {
  /** The `name` label, to tell several governors or limiters apart. @default 'default' */
  name?: string;
}

interface ObservedGovernor {
  readonly governor: Governor;
  readonly name: string;
  readonly off: () => void;
}

interface ObservedLimiter {
  readonly source: ObservableLimiter;
  readonly name: string;
}

/** The validated options of `createMetrics`, defaults applied. */
function metricsSettings(options: MetricsOptions): {
  registry: Registry;
  prefix: string;
  maxRoutes: number | undefined;
  queueWaitBuckets: readonly number[];
  responseBuckets: readonly number[];
  channels: boolean;
} {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object with `registry` (a prom-client Registry)');
  }
  knownKeys('createMetrics', options, OPTION_KEYS);
  const registry = options.registry as Registry | undefined;
  if (
    typeof registry !== 'object' ||
    registry === null ||
    typeof registry.registerMetric !== 'function' ||
    typeof registry.getSingleMetric !== 'function'
  ) {
    throw new ConfigError('registry', registry, 'a prom-client Registry (new Registry(), or register)');
  }
  const prefix = options.prefix ?? METRICS_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw new ConfigError('prefix', prefix, 'a string of letters, digits, _ and : not starting with a digit');
  }
  const queueWaitBuckets = buckets('queueWaitBuckets', options.queueWaitBuckets ?? QUEUE_WAIT_BUCKETS);
  const responseBuckets = buckets('responseBuckets', options.responseBuckets ?? RESPONSE_BUCKETS);
  const channels = options.channels ?? METRICS_DEFAULTS.channels;
  if (typeof channels !== 'boolean') throw new ConfigError('channels', channels, 'true or false');
  return {
    registry,
    prefix,
    maxRoutes: options.maxRoutes,
    queueWaitBuckets,
    responseBuckets,
    channels,
  };
}

export class SpillwayMetrics {
  readonly registry: Registry;
  readonly prefix: string;
  readonly #routes: RouteLabels;
  readonly #governors: ObservedGovernor[] = [];
  readonly #limiters: ObservedLimiter[] = [];
  /** Each store's last circuit state, from `state` messages on the store channel. */
  readonly #storeStates = new Map<string, StoreCircuitState>();
  readonly #families: RegisteredMetric[] = [];
  readonly #decisions: CounterFamily;
  readonly #queueWait: HistogramFamily;
  readonly #response: HistogramFamily;
  readonly #factorChanges: CounterFamily;
  readonly #storeErrors: CounterFamily;
  readonly #storeFallbacks: CounterFamily;
  #subscribed = false;
  #closed = false;

  constructor(options: MetricsOptions) {
    const { registry, prefix, maxRoutes, queueWaitBuckets, responseBuckets, channels } =
      metricsSettings(options);
    this.registry = registry;
    this.prefix = prefix;
    this.#routes = new RouteLabels(maxRoutes ?? METRICS_DEFAULTS.maxRoutes);
    const p = prefix;

    for (const name of [`${p}factor`, `${p}decisions_total`]) {
      if (registry.getSingleMetric(name) !== undefined) {
        throw new ConfigError(
          'prefix',
          prefix,
          `a prefix not already used on this registry (${name} exists)`,
        );
      }
    }

    this.#governorFamilies(p);
    this.#factorChanges = this.#add(
      new CounterFamily(
        `${p}factor_changes_total`,
        'Changes of the computed throttle factor, by direction (cut or raise).',
      ),
    );

    this.#limiterFamilies(p);

    // Decisions, responses and store trouble, from the diagnostics channels.
    this.#decisions = this.#add(
      new CounterFamily(
        `${p}decisions_total`,
        'Admission decisions by outcome (admitted, limited, shed, queued, timed_out, canceled), stage, priority and route.',
      ),
    );
    this.#queueWait = this.#add(
      new HistogramFamily(
        `${p}queue_wait_seconds`,
        'Time requests waited in a queue before their outcome.',
        queueWaitBuckets,
      ),
    );
    this.#response = this.#add(
      new HistogramFamily(
        `${p}decision_to_response_seconds`,
        'Time from the admission decision to the end of the response (or of the pooled work).',
        responseBuckets,
      ),
    );
    this.#storeErrors = this.#add(new CounterFamily(`${p}store_errors_total`, 'Failed store operations.'));
    this.#storeFallbacks = this.#add(
      new CounterFamily(
        `${p}store_fallbacks_total`,
        'Decisions made without the store under its failure policy.',
      ),
    );
    this.#storeCircuitFamily(p);
    if (channels) {
      subscribe(DECISION_CHANNEL, this.#onDecision);
      subscribe(RESPONSE_CHANNEL, this.#onResponse);
      subscribe(STORE_CHANNEL, this.#onStore);
      this.#subscribed = true;
    }
  }

  /** The governors' factor, pressure and signals, read at scrape time. */
  #governorFamilies(p: string): void {
    this.#gauge(
      `${p}factor`,
      'Throttle factor that limiters apply, from 0 to 1 (1: no throttling).',
      (emit) => {
        for (const g of this.#governors) emit({ name: g.name }, g.governor.factor);
      },
    );
    this.#gauge(
      `${p}computed_factor`,
      'Throttle factor the controller computed, applied or not (shadow mode, warm-up), from 0 to 1.',
      (emit) => {
        for (const g of this.#governors) emit({ name: g.name }, g.governor.computedFactor);
      },
    );
    this.#gauge(
      `${p}effective_factor`,
      'Effective throttle factor per priority class, from 0 to 1 (lower priorities feel a cut first).',
      (emit) => {
        for (const g of this.#governors) {
          const f = g.governor.factor;
          for (const priority of PRIORITY_CLASSES)
            emit({ name: g.name, priority }, effectiveFactor(f, priority));
        }
      },
    );
    this.#snapshotGauge(
      `${p}pressure`,
      "Governor's pressure at the last tick (the dominant signal's), from 0 to 1.",
      (s, name, emit) => emit({ name }, s.pressure),
    );
    this.#snapshotGauge(
      `${p}smoothed_pressure`,
      "Governor's smoothed pressure, from 0 to 1.",
      (s, name, emit) => emit({ name }, s.smoothedPressure),
    );
    this.#snapshotGauge(
      `${p}dominant_signal`,
      'The signal with the highest pressure at the last tick: 1 for it, absent for the others.',
      (s, name, emit) => {
        if (s.dominant !== undefined) emit({ name, signal: s.dominant.name }, 1);
      },
    );
    this.#snapshotGauge(
      `${p}governor_state`,
      "The governor's state: 1 for the current one, 0 for the others.",
      (s, name, emit) => {
        for (const state of STATES) emit({ name, state }, s.state === state ? 1 : 0);
      },
    );
    this.#snapshotGauge(
      `${p}signal_value`,
      "Each signal's last good reading, in the unit the `unit` label names.",
      (s, name, emit) => {
        for (const [signal, st] of Object.entries(s.signals)) {
          if (st.value !== undefined) emit({ name, signal, unit: st.unit }, st.value);
        }
      },
    );
    this.#snapshotGauge(
      `${p}signal_pressure`,
      "Each signal's pressure at the last tick, from 0 to 1.",
      (s, name, emit) => {
        for (const [signal, st] of Object.entries(s.signals)) emit({ name, signal }, st.pressure);
      },
    );
    this.#snapshotGauge(
      `${p}signal_target`,
      "Each signal's target (pressure starts above it), in the signal's unit.",
      (s, name, emit) => {
        for (const [signal, st] of Object.entries(s.signals))
          emit({ name, signal, unit: st.unit }, st.target);
      },
    );
    this.#snapshotGauge(
      `${p}signal_limit`,
      "Each signal's limit (pressure 1 at it), in the signal's unit.",
      (s, name, emit) => {
        for (const [signal, st] of Object.entries(s.signals)) emit({ name, signal, unit: st.unit }, st.limit);
      },
    );
    this.#add(
      new CollectedFamily(
        `${p}signal_failures_total`,
        'Failed samples of each signal (it threw or returned a non-finite value).',
        'counter',
        (emit) => {
          for (const g of this.#governors) {
            for (const [signal, st] of Object.entries(g.governor.snapshot().signals)) {
              emit({ name: g.name, signal }, st.failures);
            }
          }
        },
      ),
    );
  }

  /** Observed limiters, guards and pools, read at scrape time. */
  #limiterFamilies(p: string): void {
    this.#limiterGauge(`${p}in_flight`, 'Work admitted and not yet finished.', (s) => s.inFlight);
    this.#limiterGauge(
      `${p}queue_length`,
      'Work waiting in a queue for admission.',
      (s) => s.queued ?? s.queueLength ?? s.waiting,
    );
    this.#limiterGauge(
      `${p}concurrency_limit`,
      'Concurrency limit in force (adaptive limits move it).',
      (s) => s.limit,
    );
    this.#limiterGauge(`${p}limiter_keys`, 'Keys a keyed limiter holds in memory.', (s) => s.size);
    this.#limiterGauge(
      `${p}limiter_factor`,
      'Throttle factor a limiter applies, from 0 to 1.',
      (s) => s.factor,
    );
  }

  /** Each store's circuit breaker state, from `state` messages on the store channel. */
  #storeCircuitFamily(p: string): void {
    this.#gauge(
      `${p}store_circuit_state`,
      "1 for a store circuit breaker's current state (closed, open, half-open), 0 for the others.",
      (emit) => {
        for (const [name, current] of this.#storeStates) {
          for (const state of CIRCUIT_STATES) emit({ name, state }, state === current ? 1 : 0);
        }
      },
    );
  }

  /** Reads `governor` at every scrape and counts its factor changes. Returns a function that stops observing it. */
  observeGovernor(governor: Governor, options: ObserveOptions = {}): () => void {
    this.#open('observeGovernor');
    if (
      typeof governor !== 'object' ||
      governor === null ||
      typeof (governor as Governor).snapshot !== 'function' ||
      typeof (governor as Governor).on !== 'function'
    ) {
      throw new ConfigError('governor', governor, 'a Governor');
    }
    const name = labelName(options);
    if (this.#governors.some((g) => g.name === name)) {
      throw new ConfigError('name', name, 'a name no other observed governor has');
    }
    const onChange = (r: DecisionRecord) => {
      if (r.factor === r.previousFactor) return;
      const direction = r.factor < r.previousFactor ? 'cut' : 'raise';
      this.#factorChanges.cell([name, direction], () => ({ name, direction })).value++;
    };
    governor.on('change', onChange);
    const entry: ObservedGovernor = { governor, name, off: () => governor.off('change', onChange) };
    this.#governors.push(entry);
    return () => this.#unobserve(this.#governors, entry);
  }

  /**
   * Reads a limiter, guard or pool guard at every scrape: in-flight work, queue length, the
   * concurrency limit, keys held and factor, as far as it has them. Returns a function that stops.
   */
  observeLimiter(source: ObservableLimiter, options: ObserveOptions = {}): () => void {
    this.#open('observeLimiter');
    if (typeof source !== 'object' || source === null) {
      throw new ConfigError('limiter', source, 'an object with inFlight, queued, limit, size or factor');
    }
    const readable = ['inFlight', 'queued', 'queueLength', 'waiting', 'limit', 'size', 'factor'].some(
      (k) => typeof (source as Record<string, unknown>)[k] === 'number',
    );
    if (!readable) {
      throw new ConfigError(
        'limiter',
        source,
        'an object with a numeric inFlight, queued, limit, size or factor',
      );
    }
    const name = labelName(options);
    if (this.#limiters.some((l) => l.name === name)) {
      throw new ConfigError('name', name, 'a name no other observed limiter has');
    }
    const entry: ObservedLimiter = { source, name };
    this.#limiters.push(entry);
    return () => this.#unobserve(this.#limiters, entry);
  }

  /**
   * Unsubscribes from the channels, stops observing, and removes these metrics from the registry.
   * Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#subscribed) {
      unsubscribe(DECISION_CHANNEL, this.#onDecision);
      unsubscribe(RESPONSE_CHANNEL, this.#onResponse);
      unsubscribe(STORE_CHANNEL, this.#onStore);
    }
    for (const g of this.#governors) g.off();
    this.#governors.length = 0;
    this.#limiters.length = 0;
    this.#storeStates.clear();
    for (const f of this.#families) {
      if (this.registry.getSingleMetric(f.name) === (f as unknown)) this.registry.removeSingleMetric(f.name);
    }
  }

  /** Counts one decision message (what the DECISION_CHANNEL subscriber does). */
  recordDecision(m: DecisionMessage): void {
    const route = this.#routes.label(m.route);
    const priority = priorityLabel(m.priority);
    this.#decisions.cell([m.name, m.outcome, m.stage, priority, route], () => ({
      name: m.name,
      outcome: m.outcome,
      stage: m.stage,
      priority,
      route,
    })).value++;
    const wait = m.queueWaitMs;
    if (typeof wait === 'number' && wait >= 0 && m.outcome !== 'queued') {
      const h = this.#queueWait;
      h.observe(
        h.cell([m.name, m.outcome, priority], () => ({
          name: m.name,
          outcome: m.outcome,
          priority,
        })),
        wait / 1000,
      );
    }
  }

  /** Records one response message (what the RESPONSE_CHANNEL subscriber does). */
  recordResponse(m: ResponseMessage): void {
    if (typeof m.durationMs !== 'number' || !(m.durationMs >= 0)) return;
    const route = this.#routes.label(m.route);
    const h = this.#response;
    h.observe(
      h.cell([m.name, m.outcome, route], () => ({ name: m.name, outcome: m.outcome, route })),
      m.durationMs / 1000,
    );
  }

  /** Counts one store message (what the STORE_CHANNEL subscriber does). */
  recordStore(m: StoreMessage): void {
    const operation = String(m.operation);
    if (m.event === 'error') {
      this.#storeErrors.cell([m.name, operation], () => ({ name: m.name, operation })).value++;
    } else if (m.event === 'fallback') {
      const policy = String(m.policy ?? 'unknown');
      this.#storeFallbacks.cell([m.name, operation, policy], () => ({
        name: m.name,
        operation,
        policy,
      })).value++;
    } else if (m.event === 'state' && CIRCUIT_STATES.includes(m.state as StoreCircuitState)) {
      this.#storeStates.set(m.name, m.state as StoreCircuitState);
    }
  }

  readonly #onDecision = (m: unknown): void => {
    if (isObject(m)) this.recordDecision(m as unknown as DecisionMessage);
  };

  readonly #onResponse = (m: unknown): void => {
    if (isObject(m)) this.recordResponse(m as unknown as ResponseMessage);
  };

  readonly #onStore = (m: unknown): void => {
    if (isObject(m)) this.recordStore(m as unknown as StoreMessage);
  };

  #open(method: string): void {
    if (this.#closed) throw new ConfigError(method, 'after close()', 'called before close()');
  }

  #unobserve<T extends object>(list: T[], entry: T): void {
    const i = list.indexOf(entry);
    if (i < 0) return;
    list.splice(i, 1);
    (entry as Partial<ObservedGovernor>).off?.();
  }

  #add<T extends RegisteredMetric>(family: T): T {
    this.registry.registerMetric(family as never);
    this.#families.push(family);
    return family;
  }

  #gauge(name: string, help: string, collect: (emit: (labels: Labels, value: number) => void) => void): void {
    this.#add(new CollectedFamily(name, help, 'gauge', collect));
  }

  /** A gauge over each observed governor's snapshot (one snapshot per governor per family and scrape). */
  #snapshotGauge(
    name: string,
    help: string,
    read: (s: GovernorSnapshot, governorName: string, emit: (labels: Labels, value: number) => void) => void,
  ): void {
    this.#gauge(name, help, (emit) => {
      for (const g of this.#governors) read(g.governor.snapshot(), g.name, emit);
    });
  }

  #limiterGauge(name: string, help: string, read: (s: ObservableLimiter) => number | undefined): void {
    this.#gauge(name, help, (emit) => {
      for (const l of this.#limiters) {
        const v = read(l.source);
        if (typeof v === 'number' && Number.isFinite(v)) emit({ name: l.name }, v);
      }
    });
  }
}

/** Spillway's metrics on `options.registry`. See docs/metrics.md. */
export function createMetrics(options: MetricsOptions): SpillwayMetrics {
  return new SpillwayMetrics(options);
}

function labelName(options: ObserveOptions): string {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object ({ name })');
  }
  const name = options.name ?? 'default';
  if (typeof name !== 'string' || name === '' || name.length > 128) {
    throw new ConfigError('name', name, 'a non-empty string of at most 128 characters');
  }
  return name;
}

function buckets(option: string, value: unknown): readonly number[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 64) {
    throw new ConfigError(option, value, 'an array of 1 to 64 ascending finite numbers (seconds)');
  }
  for (let i = 0; i < value.length; i++) {
    const v = value[i] as unknown;
    if (typeof v !== 'number' || !Number.isFinite(v) || (i > 0 && !(v > (value[i - 1] as number)))) {
      throw new ConfigError(`${option}[${i}]`, v, 'a finite number greater than the one before it');
    }
  }
  return Object.freeze([...(value as number[])]);
}

function isObject(m: unknown): m is Record<string, unknown> {
  return typeof m === 'object' && m !== null;
}
