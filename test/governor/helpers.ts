import type { ControllerConfig } from '../../src/governor/controller.js';
import { GOVERNOR_DEFAULTS } from '../../src/governor/governor.js';
import type { Signal, SignalFailureMode } from '../../src/signals/types.js';

/** A deterministic PRNG (mulberry32): the same seed, the same noise, on every machine. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal noise from a uniform source (Box–Muller). */
export function gaussian(rand: () => number): () => number {
  return () => {
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/**
 * A signal whose reading is whatever `read(nowMs)` says. With the default target 0 and limit 1 its
 * value is its pressure (clamped to [0, 1]).
 */
export function scripted(
  name: string,
  read: (nowMs: number) => number,
  extra: { target?: number; limit?: number; unit?: string; onFailure?: SignalFailureMode } = {},
): Signal & { starts: number; stops: number } {
  const s = {
    name,
    unit: extra.unit ?? 'ratio',
    target: extra.target ?? 0,
    limit: extra.limit ?? 1,
    ...(extra.onFailure === undefined ? {} : { onFailure: extra.onFailure }),
    starts: 0,
    stops: 0,
    sample: read,
    start() {
      s.starts++;
    },
    stop() {
      s.stops++;
    },
  };
  return s;
}

/** Counts the reversals of direction in a series of factor values (equal steps are skipped). */
export function directionChanges(series: readonly number[]): number {
  let last = 0;
  let changes = 0;
  for (let i = 1; i < series.length; i++) {
    const d = Math.sign(series[i]! - series[i - 1]!);
    if (d === 0) continue;
    if (last !== 0 && d !== last) changes++;
    last = d;
  }
  return changes;
}

/** The controller at the governor's defaults, with no warm-up: what the controller unit tests step. */
export function defaultControllerConfig(): ControllerConfig {
  const d = GOVERNOR_DEFAULTS;
  return {
    intervalMs: d.intervalMs,
    engageAt: d.engageAt,
    releaseAt: d.releaseAt,
    floor: d.floor,
    maxCutPerTick: d.maxCutPerTick,
    cutIntervalMs: d.cutIntervalMs,
    maxDeadTimeMs: d.maxDeadTimeMs,
    recoverPerSec: d.recoverPerSec,
    clearMs: d.clearMs,
    recoverHalfLifeMs: d.recoverHalfLifeMs,
    cooldownMs: d.cooldownMs,
    warmupMs: 0,
    warmupEvidenceMs: d.warmupEvidenceMs,
  };
}
