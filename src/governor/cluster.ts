/**
 * One throttle factor for a node:cluster fleet.
 *
 * The primary (`shareFleetFactor`) runs its own Governor on the CPU of the whole process tree
 * (itself and every worker), and sends its factor to every worker over IPC:
 * `worker.send({ type: 'spillway:fleet-factor', factor })`, on every change and as a heartbeat.
 * Each worker (`fleetFactor`) receives it as a FactorSource and combines it with its own
 * governor through `minFactor(ownGovernor, fleet)`: the lower of the two applies.
 *
 * Why the minimum: the two factors watch different bottlenecks. The worker's own governor sees its
 * event loop and heap; the primary sees the CPU the workers share. Either being saturated is reason
 * enough to shed, so the tighter one must hold. The product would count one overload twice (a
 * saturated CPU also lags every worker's event loop, so both cut): the fleet would shed far more
 * than either controller asked for, and the two feedback loops would fight.
 */
import cluster from 'node:cluster';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import { ConfigError } from '../errors.js';
import { FactorBroadcast } from '../limiters/factor.js';
import { clampFactor } from '../limiters/factor-option.js';
import type { FactorSource } from '../limiters/types.js';
import { cpu } from '../signals/cpu.js';
import { sampleTreeCpu, type TreeCpuSample } from '../signals/cpu-tree.js';
import type { Signal } from '../signals/types.js';
import { clockOption, finiteNumber, fn, knownKeys, positiveNumber } from '../validate.js';
import { Governor, type GovernorOptions } from './governor.js';

export const FLEET_FACTOR_MESSAGE = 'spillway:fleet-factor';

/** The IPC message from the primary to each worker. */
export interface FleetFactorMessage {
  readonly type: typeof FLEET_FACTOR_MESSAGE;
  /** The fleet factor, from 0 to 1. */
  readonly factor: number;
}

export function isFleetFactorMessage(message: unknown): message is FleetFactorMessage {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { type?: unknown; factor?: unknown };
  return m.type === FLEET_FACTOR_MESSAGE && typeof m.factor === 'number' && m.factor >= 0 && m.factor <= 1;
}

/** What the primary needs of a worker: `cluster.Worker` and `ChildProcess` both fit. */
export interface WorkerLike {
  send(message: unknown, ...rest: never[]): unknown;
  isConnected?(): boolean;
  readonly connected?: boolean;
}

/** What the primary needs of `node:cluster`: the live workers and the 'online' event. */
export interface ClusterLike {
  readonly workers?: Readonly<Record<string, WorkerLike | undefined>> | undefined;
  on(event: 'online', listener: (worker: WorkerLike) => void): unknown;
  off(event: 'online', listener: (worker: WorkerLike) => void): unknown;
}

/** What a worker needs of `process`: its IPC 'message' event. */
export interface ProcessLike {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface ShareFleetFactorOptions {
  /** @default node:cluster */
  cluster?: ClusterLike;
  /** The root of the sampled tree. @default process.pid */
  pid?: number;
  /**
   * Samples the CPU of the tree under `pid` (spawns `ps`). Used by the default signal.
   * @default sampleTreeCpu from signals/cpu-tree
   */
  sampleTree?: (pid: number) => Promise<TreeCpuSample>;
  /** Tree CPU where pressure starts, a ratio of the CPU the tree may use. @default 0.75 */
  target?: number;
  /** Tree CPU where pressure reaches 1. @default 0.95 */
  limit?: number;
  /** How often the tree is sampled, in ms (each sample spawns `ps`). @default 1000 */
  treeIntervalMs?: number;
  /**
   * The primary governor's signals. @default [cpu({ tree: true, pid, sampleTree, target, limit, treeIntervalMs, clock })]
   */
  signals?: readonly Signal[];
  /** Options for the primary's Governor (not `signals` or `clock`). @default GOVERNOR_DEFAULTS */
  governor?: Omit<GovernorOptions, 'signals' | 'clock'>;
  /**
   * The current factor is re-sent this often, in ms, so that workers can tell a live primary from
   * a silent one (see `staleAfterMs` of `fleetFactor`). @default 5000
   */
  heartbeatMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

export interface FleetFactorSharer {
  /** The primary's governor (its factor is the fleet factor). */
  readonly governor: Governor;
  /** Starts the governor and the broadcasts. Idempotent. */
  start(): void;
  /**
   * Stops the governor, the heartbeat and the 'online' listener, and tells the workers factor 1 (a
   * primary that no longer measures must not hold its workers at a cut). Idempotent.
   */
  stop(): void;
  /** Sends the current fleet factor to every connected worker now. Returns how many were sent to. */
  broadcast(): number;
}

const SHARE_KEYS = [
  'cluster',
  'pid',
  'sampleTree',
  'target',
  'limit',
  'treeIntervalMs',
  'signals',
  'governor',
  'heartbeatMs',
  'clock',
] as const;

/**
 * On the cluster primary: samples the whole process tree and shares the resulting factor with every
 * worker. Not started: call `start()`.
 */
export function shareFleetFactor(options: ShareFleetFactorOptions = {}): FleetFactorSharer {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', options, 'an object');
  }
  knownKeys('shareFleetFactor', options, SHARE_KEYS);
  const clock = clockOption('clock', options.clock, systemClock);
  const target = cluster_(options.cluster);
  const heartbeatMs = finiteNumber('heartbeatMs', options.heartbeatMs ?? 5000, 10);
  const signals = options.signals ?? [
    cpu({
      tree: true,
      clock,
      pid: options.pid ?? process.pid,
      sampleTree:
        options.sampleTree === undefined
          ? sampleTreeCpu
          : fn<(pid: number) => Promise<TreeCpuSample>>('sampleTree', options.sampleTree),
      target: options.target ?? 0.75,
      limit: options.limit ?? 0.95,
      treeIntervalMs: options.treeIntervalMs ?? 1000,
    }),
  ];
  const governor = new Governor({ ...(options.governor ?? {}), signals, clock });

  let running = false;
  let heartbeat: TimerHandle | undefined;
  let unsubscribe: (() => void) | undefined;

  const sendTo = (worker: WorkerLike | undefined, factor: number): boolean => {
    if (worker === undefined) return false;
    const connected =
      typeof worker.isConnected === 'function' ? worker.isConnected() : worker.connected !== false;
    if (!connected) return false;
    try {
      worker.send({ type: FLEET_FACTOR_MESSAGE, factor } satisfies FleetFactorMessage);
      return true;
    } catch {
      // A worker that is exiting may refuse the message; the next heartbeat reaches its successor.
      return false;
    }
  };
  const broadcast = (): number => {
    let n = 0;
    for (const w of Object.values(target.workers ?? {})) if (sendTo(w, governor.factor)) n++;
    return n;
  };
  const onOnline = (worker: WorkerLike): void => {
    sendTo(worker, governor.factor);
  };
  const beat = (): void => {
    heartbeat = undefined;
    if (!running) return;
    broadcast();
    heartbeat = clock.setTimeout(beat, heartbeatMs);
  };

  return {
    governor,
    broadcast,
    start() {
      if (running) return;
      running = true;
      unsubscribe = governor.subscribe(() => broadcast());
      target.on('online', onOnline);
      governor.start();
      beat();
    },
    stop() {
      if (!running) return;
      running = false;
      heartbeat?.cancel();
      heartbeat = undefined;
      target.off('online', onOnline);
      unsubscribe?.();
      unsubscribe = undefined;
      governor.stop();
      broadcast();
    },
  };
}

function cluster_(value: unknown): ClusterLike {
  if (value === undefined) return cluster as unknown as ClusterLike;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as ClusterLike).on !== 'function' ||
    typeof (value as ClusterLike).off !== 'function'
  ) {
    throw new ConfigError(
      'cluster',
      value,
      "node:cluster or an object with workers, on('online') and off('online')",
    );
  }
  return value as ClusterLike;
}

export interface FleetFactorOptions {
  /** Where the primary's messages arrive. @default process */
  process?: ProcessLike;
  /**
   * A fleet factor older than this, in ms, is dropped and the fleet factor returns to 1 (fail open:
   * a dead or wedged primary must not freeze its workers at a cut). Keep it a few heartbeats.
   * @default 15000
   */
  staleAfterMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * On a worker: the fleet factor the primary sends, as a FactorSource. 1 until the first message
 * and again once it is stale. Combine it with the worker's own governor through `minFactor`.
 */
export class FleetFactor extends FactorBroadcast {
  readonly staleAfterMs: number;
  readonly #process: ProcessLike;
  readonly #clock: Clock;
  #lastMessageAtMs: number | undefined;
  #staleTimer: TimerHandle | undefined;
  #closed = false;
  readonly #onMessage = (message: unknown): void => {
    if (this.#closed || !isFleetFactorMessage(message)) return;
    this.#lastMessageAtMs = this.#clock.now();
    this.#staleTimer?.cancel();
    this.#staleTimer = this.#clock.setTimeout(() => {
      this.#staleTimer = undefined;
      this.publish(1);
    }, this.staleAfterMs);
    this.publish(message.factor);
  };

  constructor(options: FleetFactorOptions = {}) {
    super(1);
    if (typeof options !== 'object' || options === null)
      throw new ConfigError('options', options, 'an object');
    knownKeys('fleetFactor', options, ['process', 'staleAfterMs', 'clock']);
    this.staleAfterMs = positiveNumber('staleAfterMs', options.staleAfterMs ?? 15_000);
    this.#clock = clockOption('clock', options.clock, systemClock);
    const proc = options.process ?? process;
    if (typeof proc.on !== 'function' || typeof proc.off !== 'function') {
      throw new ConfigError('process', proc, "an object with on('message') and off('message')");
    }
    this.#process = proc;
    this.#process.on('message', this.#onMessage);
  }

  /** When the last fleet message arrived (clock ms), or undefined if none has. */
  get lastMessageAtMs(): number | undefined {
    return this.#lastMessageAtMs;
  }

  /** Stops listening to the primary and drops the stale timer; the factor returns to 1. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#process.off('message', this.#onMessage);
    this.#staleTimer?.cancel();
    this.#staleTimer = undefined;
    this.publish(1);
  }
}

/** The worker side of `shareFleetFactor`. Listens on `process` until `close()`. */
export function fleetFactor(options?: FleetFactorOptions): FleetFactor {
  return new FleetFactor(options);
}

/**
 * The lowest of several factor sources, as one FactorSource for limiters: `minFactor(governor,
 * fleetFactor())` in a cluster worker. Notifies its subscribers when the minimum changes.
 */
export class MinFactor extends FactorBroadcast {
  readonly #sources: readonly FactorSource[];
  readonly #unsubscribes: Array<() => void>;

  constructor(sources: readonly FactorSource[]) {
    if (!Array.isArray(sources) || sources.length === 0) {
      throw new ConfigError('sources', sources, 'a non-empty array of FactorSource');
    }
    sources.forEach((s, i) => {
      if (typeof s !== 'object' || s === null || typeof s.subscribe !== 'function') {
        throw new ConfigError(`sources[${i}]`, s, 'a FactorSource (factor, factorFor, subscribe)');
      }
    });
    super(lowest(sources));
    this.#sources = [...sources];
    this.#unsubscribes = this.#sources.map((s) => s.subscribe(() => this.#update()));
  }

  /** Unsubscribes from the sources. Idempotent. */
  close(): void {
    for (const u of this.#unsubscribes.splice(0)) u();
  }

  #update(): void {
    this.publish(lowest(this.#sources));
  }
}

/**
 * The lowest source factor, clamped into [0, 1]. A source reading NaN (or not a number) is skipped,
 * as a limiter following one skips such a notification (see `clampFactor`): one broken source does
 * not decide for the others, and the result is always a factor from 0 to 1.
 */
function lowest(sources: readonly FactorSource[]): number {
  let m = 1;
  for (const s of sources) {
    const f = clampFactor(s.factor);
    if (f !== undefined && f < m) m = f;
  }
  return m;
}

export function minFactor(...sources: FactorSource[]): MinFactor {
  return new MinFactor(sources);
}
