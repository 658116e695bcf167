/**
 * `spillway/policy`: limits and thresholds as a validated file, with `SPILLWAY_*` overrides and hot
 * reload. Needs the optional peer dependency zod (`npm install zod`). Nothing but exports.
 */
export { describePolicy } from './check.js';
export type { RoutedGuard } from './guard-routes.js';
export {
  applyEnv,
  isPolicyError,
  loadPolicy,
  type ParsePolicyOptions,
  PolicyError,
  type PolicyIssue,
  parsePolicy,
} from './load.js';
export {
  type PolicyLimiter,
  type PolicyReload,
  PolicyRuntime,
  type PolicyRuntimeEvents,
  type PolicyRuntimeOptions,
} from './runtime.js';
export {
  type LimiterPolicy,
  type Policy,
  type PolicyInput,
  type PoolPolicy,
  policySchema,
  type RoutePolicySpec,
  type StorePolicy,
} from './schema.js';
export { type PolicyWatcher, type WatchPolicyOptions, watchPolicy } from './watch.js';
