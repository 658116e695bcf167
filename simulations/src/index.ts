/**
 * The simulator's programmatic API: load a scenario, run it under a protection mode on virtual
 * time with the real Governor and limiters, compare modes, tune the governor, chart and write the
 * results. The `spillway` CLI and the live harness build on this module.
 *
 * vega and vega-lite are imported only by `renderChart` and `writeReport`, on first use.
 */
export { chartSpec, renderChart } from './chart.js';
export {
  comparePoolPhases,
  POOL_SIM_TOLERANCE,
  type PoolComparison,
  type PoolPhaseFigures,
  type PoolPhases,
  poolPhaseScenario,
  simulatePoolPhases,
} from './pool-phases.js';
export { jainIndex, maxMinFairShares, quantileSorted } from './metrics.js';
export { type Distribution, deriveRandom, mulberry32, type Random, sampler } from './random.js';
export {
  type Episode,
  formatSummaryTable,
  type SeriesPoint,
  type SimReport,
  type SimSummary,
  seriesToCsv,
  type TenantResult,
  writeReport,
} from './report.js';
export {
  DEFAULT_SIGNALS,
  type DownstreamSpec,
  loadScenario,
  MODES,
  type Mode,
  modelCapacity,
  PRIORITY_CLASSES,
  type PriorityClass,
  parseScenario,
  type ReportSpec,
  type RetrySpec,
  rateAt,
  type Scenario,
  ScenarioError,
  type ServerSpec,
  type SignalSpec,
  type SpillwaySpec,
  type StaticSpec,
  sourceRateAt,
  type TrafficPattern,
  type TrafficSpec,
} from './scenario.js';
export { compare, overloadedSeconds, type SimulateOptions, simulate, simulateAsync } from './simulate.js';
export {
  baselineParams,
  evaluate,
  type GovernorParams,
  type TuneObjective,
  type TuneOptions,
  type TuneResult,
  type TuneTrial,
  tune,
} from './tune.js';
