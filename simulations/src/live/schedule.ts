/**
 * The send schedule of an open-loop run, built from a scenario's traffic sources: when each request
 * is due and which source and priority it carries. It is fixed before the run starts, so the load
 * does not depend on how the server answers (no coordinated omission).
 */
import { deriveRandom } from '../random.js';
import { type PriorityClass, sourceRateAt, type TrafficSpec } from '../scenario.js';

export interface Schedule {
  /** Due time of each request, in ms from the start of the run, ascending. */
  readonly atMs: Float64Array;
  /** Index of the traffic source of each request. */
  readonly source: Uint16Array;
  /** Priority of each request: 0 critical, 1 normal, 2 sheddable (see PRIORITY_ORDER). */
  readonly priority: Uint8Array;
}

export const PRIORITY_ORDER: readonly PriorityClass[] = Object.freeze(['critical', 'normal', 'sheddable']);

export interface ScheduleOptions {
  /** Multiplies every rate (a scenario written for one capacity, run against another). @default 1 */
  scale?: number;
  durationSec: number;
  seed?: number;
  /** The schedule never holds more requests than this. @default 5_000_000 */
  maxRequests?: number;
}

/**
 * Arrival times for every source over `durationSec`: uniform arrivals at the exact spacing `1/λ(t)`,
 * Poisson arrivals with exponential gaps at the rate of the moment. A zero rate skips ahead in
 * 100 ms steps until the source asks for work again.
 */
export function buildSchedule(traffic: readonly TrafficSpec[], options: ScheduleOptions): Schedule {
  const scale = options.scale ?? 1;
  const max = options.maxRequests ?? 5_000_000;
  const endMs = options.durationSec * 1000;
  const items: { at: number; source: number; priority: number }[] = [];
  traffic.forEach((t, s) => {
    const rnd = deriveRandom(options.seed ?? 1, `live:${t.name}`);
    const pick = deriveRandom(options.seed ?? 1, `live-priority:${t.name}`);
    let at = 0;
    // Uniform arrivals within a run of constant rate are `segStart + k / rate`, rounded to the
    // nanosecond: summing gaps would drift, and a step edge would gain or lose a request.
    let segStart = 0;
    let segRate = -1;
    let k = 0;
    while (at < endMs) {
      const rate = sourceRateAt(t, at / 1000) * scale;
      if (!(rate > 0)) {
        at = Math.floor(at / 100) * 100 + 100;
        segRate = -1;
        continue;
      }
      if (t.arrivals === 'uniform') {
        if (rate !== segRate) {
          segStart = at;
          segRate = rate;
          k = 0;
        }
        items.push({ at, source: s, priority: priorityOf(t, pick()) });
        k++;
        at = Math.round((segStart + (k * 1000) / rate) * 1e6) / 1e6;
      } else {
        at += (-Math.log(1 - rnd()) * 1000) / rate;
        if (at < endMs && sourceRateAt(t, at / 1000) > 0) {
          items.push({ at, source: s, priority: priorityOf(t, pick()) });
        }
      }
      if (items.length > max) throw new RangeError(`the schedule exceeds ${max} requests`);
    }
    if (items.length > max) throw new RangeError(`the schedule exceeds ${max} requests`);
  });
  items.sort((a, b) => a.at - b.at);
  const n = items.length;
  const schedule: Schedule = {
    atMs: new Float64Array(n),
    source: new Uint16Array(n),
    priority: new Uint8Array(n),
  };
  for (let i = 0; i < n; i++) {
    const it = items[i]!;
    schedule.atMs[i] = it.at;
    schedule.source[i] = it.source;
    schedule.priority[i] = it.priority;
  }
  return schedule;
}

function priorityOf(t: TrafficSpec, u: number): number {
  const p = t.priorities;
  if (u < p.critical) return 0;
  if (u < p.critical + p.normal) return 1;
  return 2;
}

/** The highest number of requests due in any one second of the schedule. */
export function peakPerSecond(schedule: Schedule): number {
  let peak = 0;
  let lo = 0;
  const at = schedule.atMs;
  for (let hi = 0; hi < at.length; hi++) {
    while (at[hi]! - at[lo]! >= 1000) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return peak;
}
