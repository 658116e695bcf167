/**
 * The policy file's one schema (zod). The TypeScript types `Policy` (after defaults) and
 * `PolicyInput` (what a file may say) are derived from it, never written twice. Every setting's
 * error message is what is allowed, so that a report can say path, value and allowed for each.
 */
import { z } from 'zod';

const positive = z.number({ error: 'a finite number > 0' }).positive({ error: 'a finite number > 0' });
const nonNegative = z.number({ error: 'a finite number >= 0' }).min(0, { error: 'a finite number >= 0' });
const ratio = z.number({ error: 'a number from 0 to 1' }).min(0, { error: 'a number from 0 to 1' }).max(1, {
  error: 'a number from 0 to 1',
});
const openRatio = z
  .number({ error: 'a number greater than 0 and less than 1' })
  .gt(0, { error: 'a number greater than 0 and less than 1' })
  .lt(1, { error: 'a number greater than 0 and less than 1' });
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number({ error: `an integer from ${min} to ${max}` })
    .int({ error: `an integer from ${min} to ${max}` })
    .min(min, { error: `an integer from ${min} to ${max}` })
    .max(max, { error: `an integer from ${min} to ${max}` });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `one of ${values.map((v) => JSON.stringify(v)).join(', ')}` });
const name = z
  .string({ error: 'a name of letters, digits, "-" or "_"' })
  .regex(/^[A-Za-z][\w-]*$/, { error: 'a name of letters, digits, "-" or "_"' });

/** An object that accepts only the settings it names, and says which ones those are. */
function settings<S extends z.ZodRawShape>(shape: S) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `only the settings ${known}`
        : `an object with the settings ${known}`,
  });
}

const priority = z.union([oneOf(['critical', 'normal', 'sheddable'] as const), ratio], {
  error: '"critical", "normal", "sheddable" or a number from 0 to 1',
});
const PCT = 'a percentile from 0 to 100 or "max"';
const failure = oneOf(['ignore', 'overloaded'] as const);

/** A rate and a burst at factor 1. */
const limits = settings({ ratePerSec: positive, burst: positive });

export const signalsSchema = settings({
  /** Event-loop delay (lateness), ms. */
  eventLoopDelay: settings({
    targetMs: positive.optional(),
    limitMs: positive.optional(),
    percentile: z
      .union([z.number({ error: PCT }).gt(0, { error: PCT }).lte(100, { error: PCT }), z.literal('max')], {
        error: PCT,
      })
      .optional(),
    resolutionMs: positive.optional(),
    onFailure: failure.optional(),
  }).optional(),
  /** Event-loop utilisation, a ratio from 0 to 1. */
  eventLoopUtilization: settings({
    target: ratio.optional(),
    limit: ratio.optional(),
    onFailure: failure.optional(),
  }).optional(),
  /** Process CPU as a ratio of the CPU it may use (cgroup quota included). */
  cpu: settings({
    target: nonNegative.optional(),
    limit: positive.optional(),
    tree: z.boolean({ error: 'true or false' }).optional(),
    capacityCores: positive.optional(),
    onFailure: failure.optional(),
  }).optional(),
  /** Heap (default) or RSS memory, as a ratio of its limit. */
  memory: settings({
    kind: oneOf(['heap', 'rss'] as const).optional(),
    target: ratio.optional(),
    limit: ratio.optional(),
    onFailure: failure.optional(),
  }).optional(),
});

export const governorSchema = settings({
  intervalMs: positive.optional(),
  smoothingMs: positive.optional(),
  engageAt: openRatio.optional(),
  releaseAt: z
    .number({ error: 'a number from 0, less than engageAt' })
    .min(0, { error: 'a number from 0, less than engageAt' })
    .optional(),
  floor: openRatio.optional(),
  maxCutPerTick: openRatio.optional(),
  cutIntervalMs: nonNegative.optional(),
  recoverPerSec: positive.optional(),
  cooldownMs: nonNegative.optional(),
  warmupMs: nonNegative.optional(),
  mode: oneOf(['enforce', 'shadow'] as const).optional(),
});

export const limiterSchema = settings({
  /** The keyed limiter is a token bucket per key; the only algorithm a policy names today. */
  algorithm: oneOf(['token-bucket'] as const).default('token-bucket'),
  ratePerSec: positive,
  burst: positive,
  maxKeys: int(1, 2 ** 30).optional(),
  /** Named tiers: limits and the keys that get them (more keys can be placed in code with `tierOf`). */
  tiers: z
    .record(
      name,
      settings({
        ratePerSec: positive,
        burst: positive,
        keys: z.array(z.string(), { error: 'a list of keys' }).optional(),
      }),
      {
        error: 'an object of tiers by name',
      },
    )
    .optional(),
  global: limits.optional(),
  /** Scale the limits by the governor's factor. */
  followGovernor: z.boolean({ error: 'true or false' }).default(true),
  /** A store by name (`stores`); memory when absent. */
  store: name.optional(),
});

export const routeSchema = settings({
  method: z.union([z.string(), z.array(z.string())], { error: 'a method or a list of methods' }).optional(),
  path: z
    .string({ error: 'a path prefix starting with "/"' })
    .startsWith('/', { error: 'a path prefix starting with "/"' })
    .optional(),
  /** A limiter by name, or null for none on this route. */
  limiter: z.union([name, z.null()], { error: 'a limiter name or null' }).optional(),
  priority: priority.optional(),
  cost: positive.optional(),
  bypass: z.boolean({ error: 'true or false' }).optional(),
  maxWaitMs: nonNegative.optional(),
});

/**
 * A pool guard's concurrency limiter, with the names, units and defaults of the library's
 * (`guardPool`, `guardPgPool`, the HTTP guard's `concurrency`): a reload changes them in place.
 */
export const poolSchema = settings({
  /** At most this many units in flight (a fixed limit). */
  limit: int(1),
  /** Waiters held at most. @default 1000 (CONCURRENCY_DEFAULTS) */
  maxQueue: int(0).optional(),
  /** The longest a request waits for a slot, in ms. @default 1000 (CONCURRENCY_DEFAULTS) */
  maxWaitMs: nonNegative.optional(),
});

export const storeSchema = z.discriminatedUnion(
  'kind',
  [
    settings({ kind: z.literal('memory'), maxKeys: int(1, 2 ** 30).optional() }),
    settings({
      kind: z.literal('redis'),
      url: z
        .string({ error: 'a redis:// URL' })
        .regex(/^rediss?:\/\//, { error: 'a redis:// or rediss:// URL' }),
      prefix: z.string({ error: 'a string' }).optional(),
      onFailure: oneOf(['open', 'closed'] as const).optional(),
    }),
  ],
  { error: 'a store with kind "memory" or "redis"' },
);

export const policySchema = settings({
  $schema: z.string().optional(),
  signals: signalsSchema.optional(),
  governor: governorSchema.optional(),
  limiters: z
    .record(name, limiterSchema, {
      error: 'an object of limiters by name (a name of letters, digits, "-" or "_", from a letter)',
    })
    .default({}),
  routes: z.array(routeSchema, { error: 'a list of routes' }).default([]),
  pools: z
    .record(name, poolSchema, {
      error: 'an object of pool guards by name (a name of letters, digits, "-" or "_", from a letter)',
    })
    .default({}),
  stores: z
    .record(name, storeSchema, {
      error: 'an object of stores by name (a name of letters, digits, "-" or "_", from a letter)',
    })
    .default({}),
}).superRefine((p, ctx) => {
  // Cross-references and pairs: what no single field can check.
  const pair = (
    path: (string | number)[],
    low: number | undefined,
    high: number | undefined,
    what: string,
  ) => {
    if (low !== undefined && high !== undefined && !(low < high))
      ctx.addIssue({ code: 'custom', path, input: low, message: what });
  };
  const s = p.signals;
  pair(
    ['signals', 'eventLoopDelay', 'targetMs'],
    s?.eventLoopDelay?.targetMs,
    s?.eventLoopDelay?.limitMs,
    'less than limitMs',
  );
  pair(
    ['signals', 'eventLoopUtilization', 'target'],
    s?.eventLoopUtilization?.target,
    s?.eventLoopUtilization?.limit,
    'less than limit',
  );
  pair(['signals', 'cpu', 'target'], s?.cpu?.target, s?.cpu?.limit, 'less than limit');
  pair(['signals', 'memory', 'target'], s?.memory?.target, s?.memory?.limit, 'less than limit');
  pair(['governor', 'releaseAt'], p.governor?.releaseAt, p.governor?.engageAt ?? 0.5, 'less than engageAt');
  const limiters = Object.keys(p.limiters);
  p.routes.forEach((r, i) => {
    if (typeof r.limiter === 'string' && !limiters.includes(r.limiter))
      ctx.addIssue({
        code: 'custom',
        path: ['routes', i, 'limiter'],
        input: r.limiter,
        message: limiters.length
          ? `a limiter of this file (${limiters.join(', ')}) or null`
          : 'null (the file names no limiter)',
      });
  });
  const stores = Object.keys(p.stores);
  for (const [n, l] of Object.entries(p.limiters)) {
    if (l.store !== undefined && !stores.includes(l.store))
      ctx.addIssue({
        code: 'custom',
        path: ['limiters', n, 'store'],
        input: l.store,
        message: stores.length
          ? `a store of this file (${stores.join(', ')})`
          : 'a store named in `stores` (there is none)',
      });
  }
});

/** A validated policy, defaults applied. */
export type Policy = z.output<typeof policySchema>;
/** What a policy file may contain. */
export type PolicyInput = z.input<typeof policySchema>;
export type LimiterPolicy = Policy['limiters'][string];
export type RoutePolicySpec = Policy['routes'][number];
export type PoolPolicy = Policy['pools'][string];
export type StorePolicy = Policy['stores'][string];
