/**
 * The fast stages feed the slow loop. When the guard is given a governor that can watch more
 * signals (a Governor: `addSignal`), the guard adds:
 *
 * - `<name>-refusal-share` (signals.refusalShare, target 5%, limit 30%, over 2 s): the share of the
 *   requests that reached the loop-turn budget or a concurrency stage and were refused there. The
 *   key limiter's 429s and the Shedder's 503s are left out: both are scaled by the governor's own
 *   factor, so counting them would make every cut the cause of the next one (down to the floor).
 *   A request the Shedder refused had passed the turn budget and counts as admitted by it.
 * - `<name>-queue-time` (signals.queueTime, target 20 ms, limit 200 ms) for each concurrency
 *   limiter in the guard's pipelines (`-2`, `-3`… after the first).
 *
 * So while the turn budget or the concurrency stage keeps refusing, the factor falls and the
 * per-key quotas it scales shrink (the heavy keys are refused by their own quota first); when the
 * refusals stop, the pressure goes and the factor returns. `feedGovernor: false` turns it off.
 *
 * A concurrency stage whose limiter follows this governor (`factor: governor`) feeds it neither
 * refusals nor queue time, by the rule that leaves out the 429s and the Shedder's 503s: the factor
 * scales its limit, so its refusals and waits are in part the factor's doing. Counted, they were a
 * loop with no way out: at 3× a pool's capacity the stage refuses two requests in three at any
 * factor, each cut shrank the limit and raised the share, and the factor fell to the floor (one slot
 * in eight, 46% of capacity served) and stayed there after the load had gone, refusing three
 * requests in four of a load the pool could serve twice over (test/governor/feed-concurrency.test.ts).
 * Its refusals count as admitted, like the Shedder's (the request passed the turn budget).
 *
 * **The turn budget's refusals spend the quota.** While connected, the guard's loop-turn budget
 * `spendsQuota` (pipeline rule 5a): a request it refuses still spends its key's quota, as if it
 * had been admitted. So does a concurrency stage whose refusals are pressure (its limiter does not
 * follow this governor); the Shedder's refusals, and a following stage's, never do. Without this
 * the share cannot find the edge. The key
 * limiter is peeked first and charged only when the later stages admit, so while the turn budget
 * refuses a heavy key's excess, that key's bucket is never drained and its quota never binds,
 * however far the factor has scaled it: at 2.25x capacity the share read ~0.57 at every factor
 * from 1 down to 0.26, and fell to 0 only once the factor was under the edge (the quotas then
 * admitting less than the process serves). The controller saw a switch, not a distance, and
 * settled under the edge: 93-94% goodput simulated, 95.5% live, against 96.8% and 99.9% with the
 * turn budget alone. Charged, a heavy key pays for what it asks of an overloaded process, its
 * quota binds as soon as the factor scales it below what it sends, and the share falls smoothly
 * with the factor (`(q − c) / q` for q the rate the quotas admit and c the capacity), so the factor
 * settles above the edge: the quotas refuse most of the excess with 429, the turn budget the rest
 * (simulated: 96.5%, factor 0.32, never under the edge; docs/benchmarks.md has the live runs). A
 * key within its quota is rarely refused by the budget (it refuses the heavy keys first, see
 * turn-budget.ts), and when it is, a token spent by a light key leaves it within its quota. For a
 * concurrency stage the gain is smaller: a peeked quota is charged only once the stage decides, so
 * while requests wait the key's bucket still lets more of them into the queue (simulated,
 * pool-bound-tenants.json fed: the lowest factor 0.16-0.21 became 0.21-0.27, goodput the same
 * 94.4-94.8%, against 97.6-98.0% not fed).
 */
import type { Verdict } from '../admission/pipeline.js';
import { ConcurrencyStage } from '../admission/concurrency-stage.js';
import type { TurnBudget } from '../admission/turn-budget.js';
import type { Clock } from '../clock.js';
import { ConfigError } from '../errors.js';
import { type RefusalShareSignal, refusalShare } from '../signals/refusal-share.js';
import { queueTime, type QueueTimeSource } from '../signals/queue-time.js';
import type { Signal } from '../signals/types.js';
import type { Route } from './routes.js';

/** A governor the guard can feed: `addSignal` returns the function that removes the signal. */
interface FeedableGovernor {
  addSignal(signal: Signal): () => void;
  readonly options?: { readonly clock?: Clock };
}

const SIGNAL_NAME = /^[a-z0-9][a-z0-9_.:-]*$/i;

/** Suffixes tried for a guard's signal names before a name clash is reported. */
const MAX_GUARDS_PER_GOVERNOR = 64;

function feedable(governor: unknown): governor is FeedableGovernor {
  return (
    typeof governor === 'object' &&
    governor !== null &&
    typeof (governor as FeedableGovernor).addSignal === 'function'
  );
}

/** A stage's limiter, when it has one (a concurrency stage). */
interface ConcurrencySource extends QueueTimeSource {
  readonly options?: { readonly factor?: unknown };
}

export class GovernorFeed {
  /** The refusal share being fed, while connected. */
  share: RefusalShareSignal | undefined;
  #removers: (() => void)[] = [];
  /** The concurrency stages whose limiter follows the fed governor: their refusals do not count. */
  #scaled = new WeakSet<object>();
  /** The turn budgets and concurrency stages set to spend the quota while connected (cleared by `close`). */
  #spending: { spendsQuota: boolean }[] = [];

  /**
   * Connects to `governor` (disconnecting from any earlier one): adds the refusal share and a
   * queue time per concurrency limiter of `routes`. Does nothing for a governor without `addSignal`.
   */
  connect(governor: unknown, guardName: string, routes: readonly Route[]): void {
    this.close();
    if (!feedable(governor)) return;
    const base = guardName === 'default' || !SIGNAL_NAME.test(guardName) ? 'http' : guardName.slice(0, 40);
    const limiters = new Set<QueueTimeSource>();
    const scaled = new WeakSet<object>();
    // The stages whose refusals are pressure spend the quota while fed (see the module comment).
    const spending = new Set<{ spendsQuota: boolean }>();
    for (const r of routes) {
      for (const s of r.pipeline.stages) {
        const budget = (s as { readonly budget?: TurnBudget }).budget;
        if (s.name === 'turn-budget' && budget !== undefined) spending.add(budget);
        const limiter = (s as { readonly limiter?: ConcurrencySource }).limiter;
        if (s.name !== 'concurrency' || limiter === undefined) continue;
        if (limiter.options?.factor === governor) scaled.add(s);
        else {
          limiters.add(limiter);
          if (s instanceof ConcurrencyStage) spending.add(s);
        }
      }
    }
    // Several guards may feed one governor (two servers in one process): the second one's signals
    // take the next free suffix (`http-2-refusal-share`) instead of failing on a taken name.
    for (let n = 1; ; n++) {
      const prefix = n === 1 ? base : `${base}-${n}`;
      const signals = this.#signals(governor, prefix, limiters);
      try {
        for (const s of signals.all) this.#removers.push(governor.addSignal(s));
        this.share = signals.share;
        this.#scaled = scaled;
        for (const s of spending) s.spendsQuota = true;
        this.#spending = [...spending];
        return;
      } catch (err) {
        this.close();
        if (!(err instanceof ConfigError) || err.option !== 'signal.name' || n >= MAX_GUARDS_PER_GOVERNOR) throw err;
      }
    }
  }

  #signals(
    governor: FeedableGovernor,
    prefix: string,
    limiters: ReadonlySet<QueueTimeSource>,
  ): { share: RefusalShareSignal; all: Signal[] } {
    const clock = governor.options?.clock;
    const share = refusalShare({ name: `${prefix}-refusal-share`, ...(clock === undefined ? {} : { clock }) });
    const all: Signal[] = [share];
    let i = 0;
    for (const l of limiters) {
      i++;
      all.push(queueTime(`${prefix}-queue-time${i === 1 ? '' : `-${i}`}`, l));
    }
    return { share, all };
  }

  /** Counts one verdict of the guard's pipeline (see the module comment for what counts). */
  record(v: Verdict): void {
    const share = this.share;
    if (share === undefined) return;
    if (v.allowed) share.record('admitted');
    else if (v.stage.name === 'turn-budget') share.record('refused');
    else if (v.stage.name === 'concurrency') share.record(this.#scaled.has(v.stage) ? 'admitted' : 'refused');
    else if (v.stage.name === 'shedder') share.record('admitted');
  }

  /** Removes the signals from the governor. */
  close(): void {
    const removers = this.#removers;
    this.#removers = [];
    this.share = undefined;
    for (const s of this.#spending) s.spendsQuota = false;
    this.#spending = [];
    for (const remove of removers) remove();
  }
}
