/**
 * The framework-neutral HTTP guard shared by `spillway/http`, `spillway/express` and
 * `spillway/fastify`. It works on node:http's IncomingMessage and ServerResponse (Express and
 * Fastify hand both through) and imports no framework. It only hooks requests into the admission
 * pipeline (src/admission); its parts live beside it:
 *
 *   guard-options.ts  options, defaults, validation, compiled routes
 *   routes.ts         route matching, request paths, each route's pipeline
 *   refusal.ts        refusals, RateLimit fields, status JSON, the default 500
 *   counts.ts         in-flight and queued counts, and their signals
 *
 * Admission order for one request:
 *
 *   status path? ─▶ JSON snapshot        bypass? ─▶ pass, not counted
 *   pipeline: key limiter ─▶ loop-turn budget ─▶ shedder ─▶ concurrency, charged all-or-nothing
 *     (see Pipeline)
 *     refused by the key limiter: 429 (limited/blocked) or 503 (its factor shed it)
 *     refused by the turn budget, the shedder or the concurrency limit: 503
 *   admitted     ─▶ counted in flight until the response finishes or the connection closes
 *
 * With `maxWaitMs > 0` the key limiter's `acquire` waits its turn instead of refusing at once, and
 * with `concurrency` a request waits for a free slot; a wait is aborted when the client disconnects
 * (or the guard closes), and the request is counted as queued meanwhile. A key limiter over a
 * shared store (Redis) decides with a promise: the request waits for that answer (the store bounds
 * it by its timeout and failure policy), is refunded if its client leaves or the guard closes
 * meanwhile, and is not counted as queued.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'eventemitter3';
import type { Pipeline, Verdict } from '../admission/pipeline.js';
import type { AdmissionRequest } from '../admission/stage.js';
import { type TurnBudget, turnBudgetFor } from '../admission/turn-budget.js';
import { ConfigError } from '../errors.js';
import type { ConcurrencyLimiter } from '../limiters/concurrency/limiter.js';
import type { Decision, Priority } from '../limiters/types.js';
import type { Signal } from '../signals/types.js';
import { fn, knownKeys } from '../validate.js';
import { GuardCounts, type GuardSignalsOptions } from './counts.js';
import {
  buildPipelines,
  checkShedder,
  type GuardConfig,
  type HttpGuardOptions,
  type ProcessAdmission,
  parseGuardOptions,
  type RoutePolicy,
  type SnapshotSource,
} from './guard-options.js';
import {
  buildRefusal,
  CLOSING,
  defaultOnError,
  type Refusal,
  refusalResponse,
  sendJson,
  setQuotaHeaders,
} from './refusal.js';
import { type InvalidValue, InvalidValues } from './request-values.js';
import { closeWhenIdle, foldsCase, requestPath, type Route } from './routes.js';
import { publishingDecisions, publishVerdict, publishWait } from './decisions.js';
import { publishingResponses, watchResponse } from './responses.js';
import { pinSystemTime, systemClock, unpinSystemTime } from '../clock.js';
import { GovernorFeed } from './governor-feed.js';

export type { GuardSignalsOptions } from './counts.js';
export {
  HTTP_GUARD_DEFAULTS,
  type HttpGuardOptions,
  type KeyAdmission,
  type ProcessAdmission,
  type RequestValue,
  type RoutePolicy,
  type SnapshotSource,
} from './guard-options.js';
export { defaultOnError, type Refusal } from './refusal.js';
export type { InvalidValue } from './request-values.js';
export { pathHasPrefix } from './routes.js';

/** What the guard decided for one request. */
export type Outcome =
  | { readonly kind: 'pass' }
  | { readonly kind: 'status' }
  | { readonly kind: 'gone' }
  | { readonly kind: 'refused'; readonly refusal: Refusal };

type Refused = Extract<Outcome, { kind: 'refused' }>;

const PASS: Outcome = Object.freeze({ kind: 'pass' });
const STATUS: Outcome = Object.freeze({ kind: 'status' });
const GONE: Outcome = Object.freeze({ kind: 'gone' });
const NOTHING = (): void => {};

/**
 * One request as the pipeline sees it. Its abort signal is made on first use, by a stage that
 * waits or by the guard when the request waits: an AbortSignal costs microseconds to make, and most
 * requests (a free concurrency slot, an in-memory key) never wait.
 */
class GuardRequest implements AdmissionRequest {
  #ac: AbortController | undefined;

  constructor(
    readonly key: string,
    readonly priority: Priority,
    readonly cost: number,
    /**
     * The pipeline that decides it, and so releases or refunds it: `attach` may rebuild the
     * route's pipeline while the request waits or runs.
     */
    readonly pipeline: Pipeline,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts the request's wait (its client left, the guard closed). */
  get controller(): AbortController {
    if (this.#ac === undefined) this.#ac = new AbortController();
    return this.#ac;
  }
}

/** The guard's events. */
export interface HttpGuardEvents {
  /**
   * A `priority`, `cost` or `key` function returned a bad value for a request; the default was
   * used (the guard's priority or cost, the client address). Also warned once per option.
   */
  invalidValue: [invalid: InvalidValue];
}

export class HttpGuard extends EventEmitter<HttpGuardEvents> {
  readonly #config: GuardConfig;
  #governor: SnapshotSource | undefined;
  #turn: TurnBudget | undefined;
  readonly #counts = new GuardCounts();
  readonly #invalid = new InvalidValues();
  readonly #waits = new Set<AbortController>();
  readonly #feed = new GovernorFeed();
  #closed = false;

  constructor(options: HttpGuardOptions = {}) {
    super();
    this.#invalid.listener = (invalid) => this.emit('invalidValue', invalid);
    this.#config = parseGuardOptions(options, {
      onUntrusted: (why) => {
        if (why === 'malformed') this.#counts.malformedForwarded++;
      },
      onInvalid: this.#invalid.report,
    });
    this.#governor = this.#config.governor;
    this.#turn = this.#config.turn;
    this.#connectFeed();
  }

  /** Feeds the governor (when it is a Governor and `feedGovernor` is on) from the current pipelines. */
  #connectFeed(): void {
    if (!this.#config.feedGovernor) return;
    this.#feed.connect(this.#governor, this.#config.name, this.#config.table.all());
  }

  /**
   * Sets the governor (status endpoint) and the shedder after construction, for the usual wiring
   * where the governor watches this guard's own `signals()` and the shedder follows the governor:
   * guard first, then governor, then `attach`. Routes with their own `shedder` keep it.
   */
  attach(parts: { governor?: SnapshotSource; shedder?: ProcessAdmission | null }): this {
    if (typeof parts !== 'object' || parts === null) throw new ConfigError('attach', parts, 'an object');
    knownKeys('attach', parts, ['governor', 'shedder'], ['shedder']);
    if (parts.governor !== undefined) {
      fn('governor.snapshot', parts.governor?.snapshot);
      this.#governor = parts.governor;
    }
    if (parts.shedder !== undefined) {
      const shedder = checkShedder('shedder', parts.shedder);
      const table = this.#config.table;
      table.fallback.shedder = shedder;
      for (const r of table.routes) if (!r.ownShedder) r.shedder = shedder;
      // The default turn budget comes with a shedder, however it arrives.
      if (shedder !== undefined && this.#turn === undefined) {
        this.#turn = turnBudgetFor(this.#config.turnBudgetMs, true);
      }
      buildPipelines(table, this.#turn);
    }
    if (parts.governor !== undefined || parts.shedder !== undefined) this.#connectFeed();
    return this;
  }

  /**
   * Replaces the per-route policies while the guard serves (a policy reload does it:
   * `PolicyRuntime.serve`). `routes` is validated and compiled as the `routes` option is, against
   * the guard's other options as they are now (its limiter, shedder, key, priority, cost); a bad
   * route throws a ConfigError naming it (`routes[2].cost`) and nothing changes. Requests already
   * admitted or waiting finish with the route they matched (their pipeline, their slot); every
   * request from then on matches the new routes. Limiters keep their state: a route's limiter is
   * the object you give, and the guard's own are untouched. A concurrency limiter a replaced route
   * created from options is closed once its last request is done.
   */
  setRoutes(routes: readonly RoutePolicy[]): this {
    const config = this.#config;
    const { routes: compiled, owned } = config.compileRoutes(routes);
    const before = config.table;
    const table = before.withRoutes(compiled);
    // A route's own shedder brings the default turn budget, as `attach` does.
    const newTurn = this.#turn === undefined && compiled.some((r) => r.ownShedder && r.shedder !== undefined);
    if (newTurn) this.#turn = turnBudgetFor(config.turnBudgetMs, true);
    buildPipelines(table, this.#turn);
    config.usesPath = config.statusPath !== undefined || table.usesPath;
    config.table = table;
    const inUse = new Set(table.all().map((r) => r.concurrency));
    for (const r of before.routes) {
      const l = r.concurrency;
      const i = l === undefined || inUse.has(l) ? -1 : config.ownedLimiters.indexOf(l);
      if (i < 0) continue;
      config.ownedLimiters.splice(i, 1);
      closeWhenIdle(l!);
    }
    config.ownedLimiters.push(...owned);
    // The governor feed watches each concurrency limiter's queue time and sets the turn budget to
    // spend the quota: follow a change of them.
    const was = new Set(before.all().map((r) => r.concurrency));
    if (newTurn || was.size !== inUse.size || [...inUse].some((l) => !was.has(l))) this.#connectFeed();
    return this;
  }

  /** Requests admitted and not yet finished. */
  get inFlight(): number {
    return this.#counts.inFlight;
  }

  /** Requests whose priority, cost or key function returned a bad value (the default was used). */
  get invalidValues(): number {
    return this.#invalid.count;
  }

  /** Requests whose forwarding header was malformed and so not believed (keyed by the socket peer). */
  get malformedForwarded(): number {
    return this.#counts.malformedForwarded;
  }

  /** Requests waiting for their key limiter (queueing mode). */
  get queued(): number {
    return this.#counts.queued;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queue-depth signals for a governor, reading this guard's counts: `<name>-in-flight` (admitted,
   * not finished) and `<name>-queued` (waiting in queueing mode). Give a `{ target, limit }` (in
   * requests) for each one you want; only you know what your service holds.
   */
  signals(options: GuardSignalsOptions): Signal[] {
    return this.#counts.signals(options);
  }

  /**
   * The default route's admission pipeline (each route with its own policy has its own), as
   * `admissionPipeline` built it from the options: for inspection and for checking that another
   * front door (spillway-sim) runs the same stages.
   */
  get pipeline(): Pipeline {
    return this.#config.table.fallback.pipeline;
  }

  /** The loop-turn budget, when on. */
  get turnBudget(): TurnBudget | undefined {
    return this.#turn;
  }

  /**
   * The guard's concurrency limiter (the `concurrency` option), when set: its `inFlight`,
   * `waiting`, `snapshot()`, events, and the source of `signals.queueTime`.
   */
  get concurrency(): ConcurrencyLimiter | undefined {
    return this.#config.table.fallback.concurrency;
  }

  /**
   * Decides for one request. Synchronous unless the request has to wait (queueing mode, a
   * concurrency slot) or its key limiter decides remotely (a limiter over Redis: a promise, bounded
   * by the store's timeout). On
   * `pass` after admission, the request is counted in flight and released exactly once, when the
   * response finishes or its connection closes, whatever the handler does.
   */
  check(req: IncomingMessage, res: ServerResponse, fields?: FieldSink): Outcome | Promise<Outcome> {
    const config = this.#config;
    const table = config.table;
    let path = '';
    let folded = false;
    // The path (normalised, perhaps lower-cased) only when something matches on it.
    if (config.usesPath) {
      folded = foldsCase(req);
      path = requestPath(req, folded);
      if (path === (folded ? config.statusPathFolded : config.statusPath)) return STATUS;
    }
    if (table.bypassed(req, path, folded)) return PASS;
    const route = table.match(req, path, folded);
    if (route.bypass) return PASS;
    const pipeline = route.pipeline;
    const ar = new GuardRequest(route.key(req), route.priority(req), route.cost(req), pipeline);
    if (pipeline.waits) return this.#wait(res, route, ar, fields);
    // One instant for the decision: every stage, and the feed, reads the same pinned system time.
    const pin = pinSystemTime();
    let v: Verdict | Promise<Verdict>;
    try {
      v = pipeline.run(ar);
      if (!(v instanceof Promise)) this.#feed.record(v);
    } finally {
      unpinSystemTime(pin);
    }
    // A key limiter over a shared store (Redis) answers with a promise; the memory path does not.
    if (v instanceof Promise) return this.#remote(res, route, ar, v, fields);
    return this.#outcome(res, route, ar, v, undefined, fields);
  }

  /** Answers a verdict the governor feed has already counted (`#feed.record`). */
  #outcome(
    res: ServerResponse,
    route: Route,
    ar: GuardRequest,
    v: Verdict,
    waitedMs?: number,
    fields?: FieldSink,
  ): Outcome {
    if (v.allowed) {
      this.#admit(res, ar);
      setQuotaHeaders(this.#config.response, res, route, ar.key, v.quota, fields);
      if (publishingDecisions()) publishVerdict(this.#config.name, route, ar, v, undefined, waitedMs);
      if (publishingResponses()) watchResponse(res, this.#config.name, route, ar, 'admitted');
      return PASS;
    }
    const stage = v.stage.name === 'key' ? 'key' : 'process';
    const o = this.#refuse(route, v.decision, stage, ar, v.quota);
    const status = (o as Refused).refusal.status;
    if (publishingDecisions()) publishVerdict(this.#config.name, route, ar, v, status, waitedMs);
    if (publishingResponses()) {
      watchResponse(res, this.#config.name, route, ar, status === 429 ? 'limited' : 'shed');
    }
    return o;
  }

  /**
   * A pipeline that may wait (queueing mode, a concurrency limit): its abort signal is made only
   * when a stage waits, and it answers synchronously when no stage had to wait (a free slot), with
   * no promise, no signal and no listener.
   */
  #wait(res: ServerResponse, route: Route, ar: GuardRequest, fields?: FieldSink): Outcome | Promise<Outcome> {
    if (this.#closed) return this.#closing(res, route, ar, undefined);
    if (res.destroyed) ar.controller.abort();
    const pin = pinSystemTime();
    let r: Verdict | Promise<Verdict>;
    try {
      r = ar.pipeline.run(ar);
      // Counted unless it turns out gone below (as after a wait).
      if (!(r instanceof Promise) && !(r.allowed && res.destroyed)) this.#feed.record(r);
    } finally {
      unpinSystemTime(pin);
    }
    if (r instanceof Promise) return this.#waiting(res, route, ar, ar.controller, r, true, fields);
    if (r.allowed && res.destroyed) {
      // Its connection is gone already: 'close' will not come to release the slot.
      ar.pipeline.refund(ar);
      return GONE;
    }
    return this.#outcome(res, route, ar, r, undefined, fields);
  }

  /**
   * A stage decided remotely (a key limiter over Redis) and the run is pending. The signal is set
   * now, before the pipeline resumes (it reads it after each await): a client that leaves, or the
   * guard closing, before the answer gets the charge given back and nothing more charged. The
   * store bounds the wait by its timeout; the request is not counted as queued.
   */
  #remote(
    res: ServerResponse,
    route: Route,
    ar: GuardRequest,
    pending: Promise<Verdict>,
    fields: FieldSink | undefined,
  ): Promise<Outcome> {
    const ac = ar.controller;
    if (res.destroyed || this.#closed) ac.abort();
    return this.#waiting(res, route, ar, ac, pending, false, fields);
  }

  /** Waits for a pending run: in a queue (`queued`: counted and published as such) or for a remote stage. */
  async #waiting(
    res: ServerResponse,
    route: Route,
    ar: GuardRequest,
    ac: AbortController,
    pending: Promise<Verdict>,
    queued = true,
    fields?: FieldSink,
  ): Promise<Outcome> {
    const publishing = publishingDecisions() && queued;
    const start = publishing ? systemClock.now() : 0;
    if (publishing) publishWait(this.#config.name, route, ar, 'queued');
    let gone = res.destroyed;
    const onClose = (): void => {
      gone = true;
      ac.abort();
    };
    res.once('close', onClose);
    this.#waits.add(ac);
    if (queued) this.#counts.queued++;
    let v: Verdict;
    try {
      if (gone) ac.abort();
      v = await pending;
    } catch (err) {
      if (!ac.signal.aborted) throw err;
      const waited = publishing ? systemClock.now() - start : undefined;
      if (!gone) return this.#closing(res, route, ar, waited);
      if (publishingDecisions()) publishWait(this.#config.name, route, ar, 'canceled', undefined, waited);
      return GONE;
    } finally {
      if (queued) this.#counts.queued--;
      this.#waits.delete(ac);
      res.off('close', onClose);
    }
    const waitedMs = publishing ? systemClock.now() - start : undefined;
    if (gone || res.destroyed) {
      if (v.allowed) ar.pipeline.refund(ar);
      if (publishingDecisions()) publishWait(this.#config.name, route, ar, 'canceled', undefined, waitedMs);
      return GONE;
    }
    this.#feed.record(v);
    return this.#outcome(res, route, ar, v, waitedMs, fields);
  }

  /** Refused because the guard closed while (or before) the request waited. */
  #closing(res: ServerResponse, route: Route, ar: GuardRequest, waitedMs: number | undefined): Outcome {
    if (publishingDecisions()) publishWait(this.#config.name, route, ar, 'shed', CLOSING, waitedMs);
    if (publishingResponses()) watchResponse(res, this.#config.name, route, ar, 'shed');
    return this.#refuse(route, CLOSING, 'process', ar, undefined);
  }

  #admit(res: ServerResponse, ar: GuardRequest): void {
    const counts = this.#counts;
    counts.inFlight++;
    const pipeline = ar.pipeline;
    // A ServerResponse emits 'close' once: after 'finish' when the response completed, or when its
    // connection ended first (an error, a client abort, a handler that never answered). One plain
    // listener with its own flag releases exactly once, even if 'close' were emitted again; cheaper
    // on the hot path than `once` (no bound wrapper, no removal).
    let open = true;
    if (pipeline.releases) {
      res.on('close', () => {
        if (!open) return;
        open = false;
        counts.inFlight--;
        // Not finished: the connection closed first (the client left, or the handler failed).
        pipeline.release(ar, res.writableFinished);
      });
    } else {
      res.on('close', () => {
        if (!open) return;
        open = false;
        counts.inFlight--;
      });
    }
  }

  #refuse(
    route: Route,
    d: Decision,
    stage: 'key' | 'process',
    ar: GuardRequest,
    quota: Decision | undefined,
  ): Outcome {
    const refusal = buildRefusal(this.#config.response, route, d, stage, ar, quota);
    return { kind: 'refused', refusal };
  }

  /**
   * The body for a refusal: the default problem+json, or the `problem` builder's answer. Returns
   * the body and the headers to send with it.
   */
  responseFor(refusal: Refusal, req: IncomingMessage): { headers: Record<string, string>; body: string } {
    return refusalResponse(this.#config.response, refusal, req);
  }

  /** Writes a refusal on a node:http response (or hands it to `onRefused`). Cheap: no body is read. */
  sendRefusal(req: IncomingMessage, res: ServerResponse, refusal: Refusal): void {
    const onRefused = this.#config.response.onRefused;
    if (onRefused !== undefined) {
      onRefused(req, res, refusal);
      return;
    }
    const { headers, body } = this.responseFor(refusal, req);
    res.writeHead(refusal.status, headers);
    res.end(body);
  }

  /** True when the user supplied `onRefused` (adapters then hand the raw response over). */
  get customRefusal(): boolean {
    return this.#config.response.onRefused !== undefined;
  }

  /** The status endpoint's JSON: the governor's snapshot plus this guard's counts. */
  status(): Record<string, unknown> {
    const snap = this.#governor?.snapshot();
    const c = this.concurrency;
    return {
      ...(typeof snap === 'object' && snap !== null ? snap : {}),
      inFlight: this.#counts.inFlight,
      queued: this.#counts.queued,
      ...(c === undefined ? {} : { concurrency: c.snapshot() }),
    };
  }

  /** Writes the status JSON on a node:http response. */
  sendStatus(res: ServerResponse): void {
    sendJson(res, this.status());
  }

  /**
   * Runs a node:http style handler behind the guard: `next` is called when the request is
   * admitted (or bypassed); refusals and the status endpoint are answered here. `onError` gets
   * any error the guard itself raises (a key or cost function that throws).
   */
  handle(req: IncomingMessage, res: ServerResponse, next: () => void, onError: (err: unknown) => void): void {
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = this.check(req, res);
    } catch (err) {
      onError(err);
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then((o) => this.#apply(req, res, o, next), onError);
    } else {
      this.#apply(req, res, outcome, next);
    }
  }

  #apply(req: IncomingMessage, res: ServerResponse, o: Outcome, next: () => void): void {
    switch (o.kind) {
      case 'pass':
        next();
        return;
      case 'refused':
        this.sendRefusal(req, res, o.refusal);
        return;
      case 'status':
        this.sendStatus(res);
        return;
      case 'gone':
        return;
    }
  }

  /**
   * Wraps a node:http request listener. Admitted requests reach `listener`; refusals and the status
   * endpoint are answered here. A listener that throws (or whose promise rejects) goes to
   * `onError`, which by default answers 500 (or destroys a response already started) and reports
   * the error with `process.emitWarning`; either way the request's slot is released when the
   * response ends or its connection closes.
   */
  wrap(listener: RequestListener, onError: ErrorHandler = defaultOnError): RequestListener {
    if (typeof listener !== 'function')
      throw new ConfigError('listener', listener, 'a request listener function');
    fn('onError', onError);
    const run = (req: IncomingMessage, res: ServerResponse): void => {
      let r: unknown;
      try {
        r = listener(req, res);
      } catch (err) {
        onError(err, req, res);
        return;
      }
      if (r !== null && typeof r === 'object' && typeof (r as Promise<unknown>).then === 'function') {
        (r as Promise<unknown>).then(undefined, (err: unknown) => onError(err, req, res));
      }
    };
    // The synchronous path (most requests) allocates no closure: only a wait builds one.
    return (req, res) => {
      let outcome: Outcome | Promise<Outcome>;
      try {
        outcome = this.check(req, res);
      } catch (err) {
        onError(err, req, res);
        return;
      }
      if (outcome instanceof Promise) {
        outcome.then(
          (o) => this.#apply(req, res, o, () => run(req, res)),
          (err: unknown) => onError(err, req, res),
        );
      } else if (outcome.kind === 'pass') {
        run(req, res);
      } else {
        this.#apply(req, res, outcome, NOTHING);
      }
    };
  }

  /**
   * Stops the guard: every request still waiting (for its key limiter, a concurrency slot, or a
   * remote decision, whose charge is given back) is refused with 503 at once, and later waits are
   * refused. Admitted requests are unaffected and
   * still release when done.
   */
  close(): void {
    this.#closed = true;
    this.#feed.close();
    for (const ac of this.#waits) ac.abort(new Error('spillway guard closed'));
    this.#waits.clear();
    // Limiters the guard built from options are its own; a limiter passed in stays open.
    for (const l of this.#config.ownedLimiters) l.close();
  }
}

/**
 * Where the RateLimit fields of an admitted response go when not straight onto the response with
 * `setHeader`: Fastify's reply (`reply.header`), which sends them with its own headers.
 */
export interface FieldSink {
  header(name: string, value: string): unknown;
}

/** A node:http request listener. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown;

/** Handles an error thrown by a wrapped listener (or by the guard's own key/cost functions). */
export type ErrorHandler = (err: unknown, req: IncomingMessage, res: ServerResponse) => void;

/** Creates a guard; see HttpGuardOptions. */
export function createGuard(options: HttpGuardOptions = {}): HttpGuard {
  return new HttpGuard(options);
}
