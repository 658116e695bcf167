/**
 * Scenario files: the JSON schema of a simulation, validated by hand so that every mistake is
 * reported with the file and the field, e.g.
 * `simulations/scenarios/x.json: traffic[0].ratePerSec must be a finite number > 0, got -3`.
 *
 * `parseScenario` returns a fully resolved Scenario: every default filled in, so the simulator
 * and the report never guess.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from 'spillway';
import { type Distribution, meanOf } from './random.js';

/** How the simulated server is protected. */
export type Mode = 'none' | 'static' | 'spillway';
export const MODES: readonly Mode[] = Object.freeze(['none', 'static', 'spillway']);

export type PriorityClass = 'critical' | 'normal' | 'sheddable';
export const PRIORITY_CLASSES: readonly PriorityClass[] = Object.freeze(['critical', 'normal', 'sheddable']);

/** A scenario file was invalid. The message names the file, the field, the value and what is allowed. */
export class ScenarioError extends ConfigError {
  readonly source: string;
  readonly field: string;
  constructor(source: string, field: string, value: unknown, expected: string) {
    super(field, value, expected);
    this.name = 'ScenarioError';
    this.source = source;
    this.field = field;
    this.message = `${source}: ${field} must be ${expected}, got ${show(value)}`;
  }
}

function lineCol(text: string, position: number): string {
  const before = text.slice(0, position).split('\n');
  return `${before.length}, column ${before.at(-1)!.length + 1}`;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return String(value);
  const out: string[] = [];
  showInto(value, out, { left: 81 }, 0);
  const text = out.join('');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * JSON-like text of `value`, written only while `budget.left` lasts and never deeper than a few
 * levels: a huge or 100,000-deep value costs no more than what is printed (JSON.stringify and
 * String() of such a value overflow the stack).
 */
function showInto(value: unknown, out: string[], budget: { left: number }, depth: number): void {
  const put = (text: string): void => {
    out.push(text);
    budget.left -= text.length;
  };
  if (budget.left <= 0) return;
  if (typeof value === 'string') {
    put(JSON.stringify(value.length > 100 ? value.slice(0, 100) : value));
    return;
  }
  if (typeof value !== 'object' || value === null) {
    put(String(value));
    return;
  }
  const array = Array.isArray(value);
  if (depth >= 4) {
    put(array ? '[...]' : '{...}');
    return;
  }
  put(array ? '[' : '{');
  let first = true;
  for (const key of Object.keys(value)) {
    if (budget.left <= 0) return;
    put(`${first ? '' : ','}${array ? '' : `${JSON.stringify(key.slice(0, 100))}:`}`);
    first = false;
    showInto((value as Record<string, unknown>)[key], out, budget, depth + 1);
  }
  put(array ? ']' : '}');
}

/**
 * What the simulator refuses up front, because a run could not finish in memory or in reasonable
 * time (docs/simulations.md › Bounds). Every request the run may make is a heap object and an
 * event, and every tenant a key with its own counters.
 */
export const SCENARIO_BOUNDS = Object.freeze({
  /** Requests a run may make: expected first attempts of all sources, times each source's `retry.maxAttempts`. */
  maxRequests: 5_000_000,
  /** Tenants of all traffic sources together (the sum of `tenants`). */
  maxTenants: 10_000,
  /** Nesting of the scenario's JSON (objects and arrays); shipped scenarios use 4. */
  maxDepth: 32,
});

/** The first value nested deeper than `maxDepth`, as a field path; walked without recursion. */
function tooDeep(input: unknown, maxDepth: number): string | undefined {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [
    { value: input, path: '', depth: 0 },
  ];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= maxDepth) return path;
    const array = Array.isArray(value);
    for (const key of Object.keys(value)) {
      const next = array ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
      stack.push({ value: (value as Record<string, unknown>)[key], path: next, depth: depth + 1 });
    }
  }
  return undefined;
}

/** Expected first attempts of one source over the run: its rate integrated over its active time. */
export function expectedArrivals(t: TrafficSpec, durationSec: number): number {
  const from = t.startSec;
  const to = Math.min(t.endSec, durationSec);
  if (!(to > from)) return 0;
  // The midpoint rule over at most 100,000 steps: exact for steady, step and on/off edges to within
  // a step, and close enough for a bound on ramps and sinusoids.
  const steps = Math.min(100_000, Math.max(1, Math.ceil((to - from) * 10)));
  const dt = (to - from) / steps;
  let sum = 0;
  for (let i = 0; i < steps; i++) sum += sourceRateAt(t, from + (i + 0.5) * dt);
  return sum * dt;
}

/** Refuses a scenario whose requests or tenants exceed SCENARIO_BOUNDS, naming the field. */
function checkBounds(r: Reader, traffic: readonly TrafficSpec[], durationSec: number): void {
  const b = SCENARIO_BOUNDS;
  let tenants = 0;
  let requests = 0;
  traffic.forEach((t, i) => {
    tenants += t.tenants;
    if (tenants > b.maxTenants) {
      r.fail(
        `traffic[${i}].tenants`,
        t.tenants,
        `at most ${b.maxTenants.toLocaleString('en-US')} tenants over all traffic sources (the simulator's bound; ${tenants.toLocaleString('en-US')} with this one)`,
      );
    }
    requests += expectedArrivals(t, durationSec) * (t.retry?.maxAttempts ?? 1);
    if (requests > b.maxRequests) {
      r.fail(
        `traffic[${i}]`,
        `${Math.round(requests).toLocaleString('en-US')} requests`,
        `a source that keeps the run within ${b.maxRequests.toLocaleString('en-US')} requests (the simulator's bound: expected first attempts times retry.maxAttempts, over all sources; lower its rate, tenants or time, or durationSec)`,
      );
    }
  });
}

/** One of the model server's readings, fed to the real Governor as a `Signal`. */
export interface SignalSpec {
  /**
   * - `eventLoopDelay` (ms): the largest of the p99 wait of work items that started in the last
   *   interval and the wait so far of the oldest item still queued.
   * - `elu` (ratio): busy share of the loop over the last interval.
   * - `cpu` (ratio): busy share plus `server.cpuBackground`, at most 1.
   * - `memory` (ratio): (baseline + perRequest·inFlight) / limit.
   * - `inFlight` (count): requests received and not yet answered.
   * - `poolWaiting` (count): requests waiting for a downstream pool slot.
   */
  readonly kind: 'eventLoopDelay' | 'elu' | 'cpu' | 'memory' | 'inFlight' | 'poolWaiting';
  readonly name: string;
  readonly target: number;
  readonly limit: number;
}
const SIGNAL_KINDS = ['eventLoopDelay', 'elu', 'cpu', 'memory', 'inFlight', 'poolWaiting'] as const;
const SIGNAL_UNITS: Record<SignalSpec['kind'], string> = {
  eventLoopDelay: 'ms',
  elu: 'ratio',
  cpu: 'ratio',
  memory: 'ratio',
  inFlight: 'count',
  poolWaiting: 'count',
};
export function signalUnit(kind: SignalSpec['kind']): string {
  return SIGNAL_UNITS[kind];
}

export interface DownstreamSpec {
  /** Slots of the pool (e.g. database connections). */
  readonly concurrency: number;
  /** Time a request holds a slot, in ms. */
  readonly service: Distribution;
  /** Requests that may wait for a slot; one more fails at once (an error, not goodput). */
  readonly maxQueue: number;
  /** Share of admitted requests that need the pool, from 0 to 1. */
  readonly share: number;
  /** Loop time to handle the pool's answer and write the response, in ms. */
  readonly callbackCostMs: number;
}

export interface ServerSpec {
  /** Loop time of an admitted request, in ms. */
  readonly service: Distribution;
  /** Loop time to decide and write a refusal (429/503), in ms. A refusal is not free. */
  readonly refusalCostMs: number;
  /** Loop time of one governor tick, in ms. */
  readonly tickCostMs: number;
  /** Share of a CPU busy outside the loop (GC, other threads), added to the `cpu` signal, from 0 to 1. */
  readonly cpuBackground: number;
  readonly memory: {
    readonly baselineBytes: number;
    readonly perRequestBytes: number;
    readonly limitBytes: number;
  };
  readonly downstream: DownstreamSpec | undefined;
}

export interface RetrySpec {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Wait at least the refusal's Retry-After before the next attempt. */
  readonly honourRetryAfter: boolean;
  /** Wait before the first retry, in ms; multiplied by `backoffMultiplier` for each later one. */
  readonly backoffMs: number;
  readonly backoffMultiplier: number;
  /** Longest wait between attempts, in ms (also caps an infinite Retry-After). */
  readonly maxDelayMs: number;
  /** Random share of the wait added or removed, from 0 to 1 (0.5: ±50%). */
  readonly jitter: number;
  /** Retries allowed per first attempt (a retry budget, e.g. 0.1); null for no budget. */
  readonly budgetRatio: number | null;
  /** Also retry when the client's own timeout fires. */
  readonly onTimeout: boolean;
}

export type TrafficPattern =
  | { readonly kind: 'steady'; readonly ratePerSec: number }
  | {
      readonly kind: 'ramp';
      readonly fromPerSec: number;
      readonly toPerSec: number;
      readonly startSec: number;
      readonly endSec: number;
    }
  | {
      readonly kind: 'step';
      readonly basePerSec: number;
      readonly peakPerSec: number;
      readonly startSec: number;
      readonly endSec: number;
    }
  | {
      readonly kind: 'sinusoid';
      readonly meanPerSec: number;
      readonly amplitudePerSec: number;
      readonly periodSec: number;
      readonly phaseSec: number;
    }
  | {
      readonly kind: 'onOff';
      readonly onPerSec: number;
      readonly offPerSec: number;
      readonly onSec: number;
      readonly offSec: number;
      readonly phaseSec: number;
    };

export interface TrafficSpec {
  readonly name: string;
  readonly tenant: string;
  /** Copies of this source, each its own tenant `${tenant}-${i}` when more than 1, each at the full rate. */
  readonly tenants: number;
  readonly pattern: TrafficPattern;
  readonly arrivals: 'poisson' | 'uniform';
  readonly startSec: number;
  readonly endSec: number;
  readonly priorities: Readonly<Record<PriorityClass, number>>;
  readonly cost: number;
  readonly timeoutMs: number;
  readonly retry: RetrySpec | undefined;
}

export interface StaticSpec {
  readonly ratePerSec: number;
  readonly burst: number;
}

export interface SpillwaySpec {
  /** Options passed to `createGovernor` (besides signals and clock). */
  readonly governor: Readonly<Record<string, number | string>>;
  /** Options passed to `new Shedder` (besides factor and clock); `false` for no Shedder. */
  readonly shedder: Readonly<Record<string, number>> | false;
  /**
   * A keyed limiter per tenant; undefined for none. `scaled`: its quota follows the governor's
   * factor, as a guard's limiter given `factor: governor` does (default false: a fixed quota).
   */
  readonly perTenant:
    | { readonly ratePerSec: number; readonly burst: number; readonly scaled: boolean }
    | undefined;
  /**
   * The guard's `feedGovernor`: the turn budget's and the concurrency stage's refusal share (and the
   * concurrency stage's queue time) are signals of the governor, as in the HTTP guard. @default false
   */
  readonly feedGovernor: boolean;
  /** The guard's `turnBudgetMs`: a budget in ms, `false` for none; undefined for the guard's default (25 ms with a shedder). */
  readonly turnBudgetMs: number | false | undefined;
  /**
   * Options of a `ConcurrencyLimiter` stage (besides factor and clock); undefined for none.
   * `scaled`: its limit follows the governor's factor, as a guard's limiter given `factor: governor`
   * does (default false: as the guard's `concurrency: { ... }` options create it, a fixed limit).
   */
  readonly concurrency: (Readonly<Record<string, unknown>> & { readonly scaled: boolean }) | undefined;
}

export interface ReportSpec {
  /** A second counts as recovered when the oldest wait in the loop is at most this, in ms. */
  readonly recoveryWaitMs: number;
  /** How long after an overload ends its episode still counts (for switches and recovery), in s. */
  readonly settleSec: number;
  /** The latency target used by the tuner and reported against, in ms. */
  readonly latencyTargetMs: number;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Where it was loaded from, for messages. */
  readonly source: string;
  readonly durationSec: number;
  readonly seed: number;
  /** Requests per second the server can complete; computed from the model unless given. */
  readonly capacityPerSec: number;
  readonly server: ServerSpec;
  readonly signals: readonly SignalSpec[];
  readonly traffic: readonly TrafficSpec[];
  readonly static: StaticSpec;
  readonly spillway: SpillwaySpec;
  readonly modes: readonly Mode[];
  readonly report: ReportSpec;
}

/** Reads and validates a scenario file. Errors name the file and the field. */
export async function loadScenario(path: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ScenarioError(path, '(file)', path, `a readable file (${(err as Error).message})`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    const e = new ScenarioError(path, '(file)', text.slice(0, 40), 'JSON');
    // Say where the JSON breaks, in lines and columns, rather than "must be valid JSON".
    const m = /position (\d+)/.exec((err as Error).message);
    const where = m
      ? ` at line ${lineCol(text, Number(m[1]))}`
      : text.trim() === ''
        ? ' (the file is empty)'
        : '';
    e.message = `${path}: the file is not valid JSON${where}: ${(err as Error).message.replace(/ in JSON at position \d+.*$/, '')}`;
    throw e;
  }
  return parseScenario(obj, path);
}

type Obj = Record<string, unknown>;

class Reader {
  constructor(readonly source: string) {}

  fail(field: string, value: unknown, expected: string): never {
    throw new ScenarioError(this.source, field, value, expected);
  }

  object(field: string, value: unknown): Obj {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      this.fail(field, value, 'an object');
    return value as Obj;
  }

  keys(field: string, obj: Obj, known: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) {
        this.fail(
          `${field ? `${field}.` : ''}${k}`,
          obj[k],
          `absent (unknown field; known: ${known.join(', ')})`,
        );
      }
    }
  }

  num(
    field: string,
    value: unknown,
    opts: { min?: number; gt?: number; max?: number; def?: number } = {},
  ): number {
    if (value === undefined && opts.def !== undefined) return opts.def;
    const { min, gt, max } = opts;
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (min === undefined || value >= min) &&
      (gt === undefined || value > gt) &&
      (max === undefined || value <= max);
    if (!ok) {
      let text = 'a finite number';
      if (gt !== undefined) text += ` > ${gt}`;
      if (min !== undefined) text += ` >= ${min}`;
      if (max !== undefined) text += `${gt !== undefined || min !== undefined ? ' and' : ''} <= ${max}`;
      this.fail(field, value, text);
    }
    return value as number;
  }

  int(field: string, value: unknown, min: number, def?: number): number {
    if (value === undefined && def !== undefined) return def;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      this.fail(field, value, `an integer >= ${min}`);
    }
    return value;
  }

  str(field: string, value: unknown, def?: string): string {
    if (value === undefined && def !== undefined) return def;
    if (typeof value !== 'string' || value.length === 0) this.fail(field, value, 'a non-empty string');
    return value;
  }

  bool(field: string, value: unknown, def: boolean): boolean {
    if (value === undefined) return def;
    if (typeof value !== 'boolean') this.fail(field, value, 'true or false');
    return value;
  }

  oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[], def?: T): T {
    if (value === undefined && def !== undefined) return def;
    if (typeof value !== 'string' || !allowed.includes(value as T)) {
      this.fail(field, value, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return value as T;
  }
}

const TOP_KEYS = [
  '$schema',
  'name',
  'description',
  'durationSec',
  'seed',
  'capacityPerSec',
  'server',
  'signals',
  'traffic',
  'static',
  'spillway',
  'modes',
  'report',
];

/** The default signals: event-loop delay and memory. */
export const DEFAULT_SIGNALS: readonly SignalSpec[] = Object.freeze([
  Object.freeze({ kind: 'eventLoopDelay', name: 'event-loop-delay', target: 50, limit: 250 } as const),
  Object.freeze({ kind: 'memory', name: 'memory', target: 0.8, limit: 0.95 } as const),
]);

/** Validates a scenario object (parsed JSON) and fills in every default. `source` names it in errors. */
export function parseScenario(input: unknown, source = '(scenario)'): Scenario {
  const r = new Reader(source);
  const deep = tooDeep(input, SCENARIO_BOUNDS.maxDepth);
  if (deep !== undefined) {
    const field = deep.length > 120 ? `${deep.slice(0, 117)}...` : deep;
    r.fail(
      field,
      '(a deeper value)',
      `nested at most ${SCENARIO_BOUNDS.maxDepth} levels deep (the simulator's bound)`,
    );
  }
  const o = r.object('(root)', input);
  r.keys('', o, TOP_KEYS);
  const name = r.str('name', o['name']);
  const description = o['description'] === undefined ? '' : r.str('description', o['description']);
  const durationSec = r.num('durationSec', o['durationSec'], { gt: 0, max: 7 * 86_400 });
  const seed = r.int('seed', o['seed'], 0, 1);
  const server = parseServer(r, o['server'] ?? {});
  const signals =
    o['signals'] === undefined
      ? DEFAULT_SIGNALS
      : parseSignals(r, o['signals'], server.downstream !== undefined);

  if (!Array.isArray(o['traffic']) || o['traffic'].length === 0) {
    r.fail('traffic', o['traffic'], 'a non-empty array of traffic sources');
  }
  const traffic = (o['traffic'] as unknown[]).map((t, i) => parseTraffic(r, `traffic[${i}]`, t, durationSec));
  const names = new Set<string>();
  traffic.forEach((t, i) => {
    if (names.has(t.name)) r.fail(`traffic[${i}].name`, t.name, 'a name no other traffic source has');
    names.add(t.name);
  });
  checkBounds(r, traffic, durationSec);

  const computed = modelCapacity(server);
  const capacityPerSec =
    o['capacityPerSec'] === undefined ? computed : r.num('capacityPerSec', o['capacityPerSec'], { gt: 0 });

  const st = r.object('static', o['static'] ?? {});
  r.keys('static', st, ['ratePerSec', 'burst']);
  const staticRate = r.num('static.ratePerSec', st['ratePerSec'], {
    gt: 0,
    def: round(capacityPerSec * 0.9),
  });
  const staticSpec: StaticSpec = {
    ratePerSec: staticRate,
    burst: r.num('static.burst', st['burst'], { min: 1, def: Math.max(1, round(staticRate * 0.1)) }),
  };

  const sp = r.object('spillway', o['spillway'] ?? {});
  r.keys('spillway', sp, ['governor', 'shedder', 'perTenant', 'turnBudgetMs', 'concurrency', 'feedGovernor']);
  const gov = r.object('spillway.governor', sp['governor'] ?? {});
  for (const [k, v] of Object.entries(gov)) {
    if (k === 'signals' || k === 'clock')
      r.fail(`spillway.governor.${k}`, v, 'absent (the simulator sets it)');
    if (typeof v === 'string') continue;
    r.num(`spillway.governor.${k}`, v);
  }
  const shed = sp['shedder'] === false ? false : r.object('spillway.shedder', sp['shedder'] ?? {});
  for (const [k, v] of Object.entries(shed === false ? {} : shed)) {
    if (k === 'factor' || k === 'clock') r.fail(`spillway.shedder.${k}`, v, 'absent (the simulator sets it)');
    r.num(`spillway.shedder.${k}`, v);
  }
  const feedGovernor = r.bool('spillway.feedGovernor', sp['feedGovernor'], false);
  let perTenant: SpillwaySpec['perTenant'];
  if (sp['perTenant'] !== undefined) {
    const pt = r.object('spillway.perTenant', sp['perTenant']);
    r.keys('spillway.perTenant', pt, ['ratePerSec', 'burst', 'scaled']);
    const rate = r.num('spillway.perTenant.ratePerSec', pt['ratePerSec'], { gt: 0 });
    perTenant = {
      ratePerSec: rate,
      burst: r.num('spillway.perTenant.burst', pt['burst'], { min: 1, def: Math.max(1, round(rate * 0.5)) }),
      scaled: r.bool('spillway.perTenant.scaled', pt['scaled'], false),
    };
  }

  const tb = sp['turnBudgetMs'];
  const turnBudgetMs = tb === undefined || tb === false ? tb : r.num('spillway.turnBudgetMs', tb, { gt: 0 });
  let concurrency: SpillwaySpec['concurrency'];
  if (sp['concurrency'] !== undefined) {
    const c = r.object('spillway.concurrency', sp['concurrency']);
    for (const k of ['factor', 'clock'])
      if (k in c) r.fail(`spillway.concurrency.${k}`, c[k], 'absent (the simulator sets it; `scaled: true` follows the governor)');
    const scaled: unknown = c['scaled'] ?? false;
    if (typeof scaled !== 'boolean') return r.fail('spillway.concurrency.scaled', scaled, 'true or false');
    concurrency = { ...c, scaled };
  }

  let modes: readonly Mode[] = MODES;
  if (o['modes'] !== undefined) {
    if (!Array.isArray(o['modes']) || o['modes'].length === 0)
      r.fail('modes', o['modes'], 'a non-empty array');
    modes = (o['modes'] as unknown[]).map((m, i) => r.oneOf(`modes[${i}]`, m, MODES));
  }

  const rep = r.object('report', o['report'] ?? {});
  r.keys('report', rep, ['recoveryWaitMs', 'settleSec', 'latencyTargetMs']);
  const report: ReportSpec = {
    recoveryWaitMs: r.num('report.recoveryWaitMs', rep['recoveryWaitMs'], { gt: 0, def: 100 }),
    settleSec: r.num('report.settleSec', rep['settleSec'], { min: 0, def: 60 }),
    latencyTargetMs: r.num('report.latencyTargetMs', rep['latencyTargetMs'], { gt: 0, def: 500 }),
  };

  return {
    name,
    description,
    source,
    durationSec,
    seed,
    capacityPerSec,
    server,
    signals,
    traffic,
    static: staticSpec,
    spillway: {
      governor: gov as Record<string, number | string>,
      shedder: shed === false ? false : (shed as Record<string, number>),
      perTenant,
      feedGovernor,
      turnBudgetMs,
      concurrency,
    },
    modes,
    report,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Requests per second the model completes at most: the loop's limit 1000 / (mean service + share ·
 * callback) and the pool's limit concurrency · 1000 / (mean pool time · share), whichever is lower.
 */
export function modelCapacity(server: ServerSpec): number {
  const d = server.downstream;
  const loopMs = meanOf(server.service) + (d ? d.share * d.callbackCostMs : 0);
  let cap = 1000 / loopMs;
  if (d && d.share > 0) cap = Math.min(cap, (d.concurrency * 1000) / (meanOf(d.service) * d.share));
  return cap;
}

function parseDistribution(r: Reader, field: string, value: unknown): Distribution {
  const o = r.object(field, value);
  const kind = r.oneOf(`${field}.kind`, o['kind'], [
    'constant',
    'exponential',
    'lognormal',
    'pareto',
  ] as const);
  switch (kind) {
    case 'constant':
      r.keys(field, o, ['kind', 'ms']);
      return { kind, ms: r.num(`${field}.ms`, o['ms'], { gt: 0 }) };
    case 'exponential':
      r.keys(field, o, ['kind', 'meanMs']);
      return { kind, meanMs: r.num(`${field}.meanMs`, o['meanMs'], { gt: 0 }) };
    case 'lognormal':
      r.keys(field, o, ['kind', 'meanMs', 'cv']);
      return {
        kind,
        meanMs: r.num(`${field}.meanMs`, o['meanMs'], { gt: 0 }),
        cv: r.num(`${field}.cv`, o['cv'], { gt: 0, max: 20 }),
      };
    case 'pareto':
      r.keys(field, o, ['kind', 'meanMs', 'alpha']);
      return {
        kind,
        meanMs: r.num(`${field}.meanMs`, o['meanMs'], { gt: 0 }),
        alpha: r.num(`${field}.alpha`, o['alpha'], { gt: 1, max: 100 }),
      };
  }
}

function parseServer(r: Reader, value: unknown): ServerSpec {
  const o = r.object('server', value);
  r.keys('server', o, ['service', 'refusalCostMs', 'tickCostMs', 'cpuBackground', 'memory', 'downstream']);
  const service =
    o['service'] === undefined
      ? ({ kind: 'exponential', meanMs: 2 } as const)
      : parseDistribution(r, 'server.service', o['service']);
  const mem = r.object('server.memory', o['memory'] ?? {});
  r.keys('server.memory', mem, ['baselineBytes', 'perRequestBytes', 'limitBytes']);
  const memory = {
    baselineBytes: r.num('server.memory.baselineBytes', mem['baselineBytes'], { min: 0, def: 200e6 }),
    perRequestBytes: r.num('server.memory.perRequestBytes', mem['perRequestBytes'], { min: 0, def: 50e3 }),
    limitBytes: r.num('server.memory.limitBytes', mem['limitBytes'], { gt: 0, def: 2e9 }),
  };
  let downstream: DownstreamSpec | undefined;
  if (o['downstream'] !== undefined) {
    const d = r.object('server.downstream', o['downstream']);
    r.keys('server.downstream', d, ['concurrency', 'service', 'maxQueue', 'share', 'callbackCostMs']);
    downstream = {
      concurrency: r.int('server.downstream.concurrency', d['concurrency'], 1),
      service:
        d['service'] === undefined
          ? { kind: 'exponential', meanMs: 10 }
          : parseDistribution(r, 'server.downstream.service', d['service']),
      maxQueue: r.int('server.downstream.maxQueue', d['maxQueue'], 0, 1000),
      share: r.num('server.downstream.share', d['share'], { min: 0, max: 1, def: 1 }),
      callbackCostMs: r.num('server.downstream.callbackCostMs', d['callbackCostMs'], { min: 0, def: 0.1 }),
    };
  }
  return {
    service,
    refusalCostMs: r.num('server.refusalCostMs', o['refusalCostMs'], { min: 0, def: 0.05 }),
    tickCostMs: r.num('server.tickCostMs', o['tickCostMs'], { min: 0, def: 0.02 }),
    cpuBackground: r.num('server.cpuBackground', o['cpuBackground'], { min: 0, max: 1, def: 0 }),
    memory,
    downstream,
  };
}

function parseSignals(r: Reader, value: unknown, hasPool: boolean): SignalSpec[] {
  if (!Array.isArray(value) || value.length === 0) r.fail('signals', value, 'a non-empty array of signals');
  const names = new Set<string>();
  return value.map((v, i) => {
    const f = `signals[${i}]`;
    const o = r.object(f, v);
    r.keys(f, o, ['kind', 'name', 'target', 'limit']);
    const kind = r.oneOf(`${f}.kind`, o['kind'], SIGNAL_KINDS);
    if (kind === 'poolWaiting' && !hasPool)
      r.fail(`${f}.kind`, kind, 'a kind other than "poolWaiting" (no server.downstream)');
    const name = r.str(`${f}.name`, o['name'], kebab(kind));
    if (names.has(name)) r.fail(`${f}.name`, name, 'a name no other signal has');
    names.add(name);
    const ratioKind = kind === 'elu' || kind === 'cpu' || kind === 'memory';
    const target = r.num(`${f}.target`, o['target'], ratioKind ? { min: 0, max: 1 } : { min: 0 });
    const limit = r.num(`${f}.limit`, o['limit'], ratioKind ? { gt: target, max: 1 } : { gt: target });
    return { kind, name, target, limit };
  });
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const COMMON_TRAFFIC = [
  'name',
  'tenant',
  'tenants',
  'pattern',
  'arrivals',
  'startSec',
  'endSec',
  'priorities',
  'cost',
  'timeoutMs',
  'retry',
];
const PATTERN_KEYS: Record<TrafficPattern['kind'], string[]> = {
  steady: ['ratePerSec'],
  ramp: ['fromPerSec', 'toPerSec', 'rampStartSec', 'rampEndSec'],
  step: ['basePerSec', 'peakPerSec', 'stepStartSec', 'stepEndSec'],
  sinusoid: ['meanPerSec', 'amplitudePerSec', 'periodSec', 'phaseSec'],
  onOff: ['onPerSec', 'offPerSec', 'onSec', 'offSec', 'phaseSec'],
};

function parseTraffic(r: Reader, f: string, value: unknown, durationSec: number): TrafficSpec {
  const o = r.object(f, value);
  const kind = r.oneOf(`${f}.pattern`, o['pattern'], [
    'steady',
    'ramp',
    'step',
    'sinusoid',
    'onOff',
  ] as const);
  r.keys(f, o, [...COMMON_TRAFFIC, ...PATTERN_KEYS[kind]]);
  const rate = (k: string, def?: number) =>
    r.num(`${f}.${k}`, o[k], def === undefined ? { min: 0 } : { min: 0, def });
  let pattern: TrafficPattern;
  switch (kind) {
    case 'steady':
      pattern = { kind, ratePerSec: r.num(`${f}.ratePerSec`, o['ratePerSec'], { gt: 0 }) };
      break;
    case 'ramp': {
      const startSec = r.num(`${f}.rampStartSec`, o['rampStartSec'], { min: 0, def: 0 });
      const endSec = r.num(`${f}.rampEndSec`, o['rampEndSec'], { gt: startSec, def: durationSec });
      pattern = { kind, fromPerSec: rate('fromPerSec'), toPerSec: rate('toPerSec'), startSec, endSec };
      break;
    }
    case 'step': {
      const startSec = r.num(`${f}.stepStartSec`, o['stepStartSec'], { min: 0 });
      const endSec = r.num(`${f}.stepEndSec`, o['stepEndSec'], { gt: startSec, def: durationSec });
      pattern = { kind, basePerSec: rate('basePerSec'), peakPerSec: rate('peakPerSec'), startSec, endSec };
      break;
    }
    case 'sinusoid': {
      const meanPerSec = r.num(`${f}.meanPerSec`, o['meanPerSec'], { gt: 0 });
      pattern = {
        kind,
        meanPerSec,
        amplitudePerSec: r.num(`${f}.amplitudePerSec`, o['amplitudePerSec'], { min: 0, max: meanPerSec }),
        periodSec: r.num(`${f}.periodSec`, o['periodSec'], { gt: 0 }),
        phaseSec: r.num(`${f}.phaseSec`, o['phaseSec'], { def: 0 }),
      };
      break;
    }
    case 'onOff':
      pattern = {
        kind,
        onPerSec: rate('onPerSec'),
        offPerSec: rate('offPerSec', 0),
        onSec: r.num(`${f}.onSec`, o['onSec'], { gt: 0 }),
        offSec: r.num(`${f}.offSec`, o['offSec'], { gt: 0 }),
        phaseSec: r.num(`${f}.phaseSec`, o['phaseSec'], { min: 0, def: 0 }),
      };
      break;
  }
  if (peakRate(pattern) <= 0) r.fail(`${f}.pattern`, kind, 'a pattern with some rate above 0');

  const startSec = r.num(`${f}.startSec`, o['startSec'], { min: 0, def: 0 });
  const endSec = r.num(`${f}.endSec`, o['endSec'], { gt: startSec, def: durationSec });

  let priorities: Record<PriorityClass, number> = { critical: 0, normal: 1, sheddable: 0 };
  if (o['priorities'] !== undefined) {
    const p = r.object(`${f}.priorities`, o['priorities']);
    r.keys(`${f}.priorities`, p, PRIORITY_CLASSES);
    priorities = {
      critical: r.num(`${f}.priorities.critical`, p['critical'], { min: 0, max: 1, def: 0 }),
      normal: r.num(`${f}.priorities.normal`, p['normal'], { min: 0, max: 1, def: 0 }),
      sheddable: r.num(`${f}.priorities.sheddable`, p['sheddable'], { min: 0, max: 1, def: 0 }),
    };
    const sum = priorities.critical + priorities.normal + priorities.sheddable;
    if (Math.abs(sum - 1) > 1e-6) r.fail(`${f}.priorities`, p, 'shares that add up to 1');
  }

  let retry: RetrySpec | undefined;
  if (o['retry'] !== undefined) {
    const g = `${f}.retry`;
    const ro = r.object(g, o['retry']);
    r.keys(g, ro, [
      'maxAttempts',
      'honourRetryAfter',
      'backoffMs',
      'backoffMultiplier',
      'maxDelayMs',
      'jitter',
      'budgetRatio',
      'onTimeout',
    ]);
    retry = {
      maxAttempts: r.int(`${g}.maxAttempts`, ro['maxAttempts'], 1, 3),
      honourRetryAfter: r.bool(`${g}.honourRetryAfter`, ro['honourRetryAfter'], true),
      backoffMs: r.num(`${g}.backoffMs`, ro['backoffMs'], { min: 0, def: 100 }),
      backoffMultiplier: r.num(`${g}.backoffMultiplier`, ro['backoffMultiplier'], { min: 1, def: 2 }),
      maxDelayMs: r.num(`${g}.maxDelayMs`, ro['maxDelayMs'], { gt: 0, def: 30_000 }),
      jitter: r.num(`${g}.jitter`, ro['jitter'], { min: 0, max: 1, def: 0.5 }),
      budgetRatio:
        ro['budgetRatio'] === undefined || ro['budgetRatio'] === null
          ? null
          : r.num(`${g}.budgetRatio`, ro['budgetRatio'], { min: 0 }),
      onTimeout: r.bool(`${g}.onTimeout`, ro['onTimeout'], false),
    };
  }

  return {
    name: r.str(`${f}.name`, o['name'], f),
    tenant: r.str(`${f}.tenant`, o['tenant'], 'default'),
    tenants: r.int(`${f}.tenants`, o['tenants'], 1, 1),
    pattern,
    arrivals: r.oneOf(`${f}.arrivals`, o['arrivals'], ['poisson', 'uniform'] as const, 'poisson'),
    startSec,
    endSec,
    priorities,
    cost: r.num(`${f}.cost`, o['cost'], { gt: 0, def: 1 }),
    timeoutMs: r.num(`${f}.timeoutMs`, o['timeoutMs'], { gt: 0, def: 10_000 }),
    retry,
  };
}

/** The highest rate a pattern ever asks for, per second. */
export function peakRate(p: TrafficPattern): number {
  switch (p.kind) {
    case 'steady':
      return p.ratePerSec;
    case 'ramp':
      return Math.max(p.fromPerSec, p.toPerSec);
    case 'step':
      return Math.max(p.basePerSec, p.peakPerSec);
    case 'sinusoid':
      return p.meanPerSec + p.amplitudePerSec;
    case 'onOff':
      return Math.max(p.onPerSec, p.offPerSec);
  }
}

/** The rate a pattern asks for at `tSec` (seconds from the start of the run), per second. */
export function rateAt(p: TrafficPattern, tSec: number): number {
  switch (p.kind) {
    case 'steady':
      return p.ratePerSec;
    case 'ramp':
      if (tSec <= p.startSec) return p.fromPerSec;
      if (tSec >= p.endSec) return p.toPerSec;
      return p.fromPerSec + ((p.toPerSec - p.fromPerSec) * (tSec - p.startSec)) / (p.endSec - p.startSec);
    case 'step':
      return tSec >= p.startSec && tSec < p.endSec ? p.peakPerSec : p.basePerSec;
    case 'sinusoid':
      return Math.max(
        0,
        p.meanPerSec + p.amplitudePerSec * Math.sin((2 * Math.PI * (tSec - p.phaseSec)) / p.periodSec),
      );
    case 'onOff': {
      const cycle = p.onSec + p.offSec;
      const pos = (((tSec - p.phaseSec) % cycle) + cycle) % cycle;
      return pos < p.onSec ? p.onPerSec : p.offPerSec;
    }
  }
}

/** The first-attempt rate a traffic source asks for at `tSec`, all its tenants together, per second. */
export function sourceRateAt(t: TrafficSpec, tSec: number): number {
  if (tSec < t.startSec || tSec >= t.endSec) return 0;
  return rateAt(t.pattern, tSec) * t.tenants;
}
