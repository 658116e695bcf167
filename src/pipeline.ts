/**
 * `spillway/pipeline`: the admission pipeline's building blocks, for custom front doors and for
 * spillway-sim, which must run exactly what the HTTP adapters run ("one pipeline, everywhere").
 * Nothing but exports.
 */
export { type RetryAfterOptions, retryAfterSeconds } from './adapters/headers.js';
export { ADMITTED_UNLIMITED } from './limiters/decisions.js';
export {
  type Admitted,
  admissionPipeline,
  Pipeline,
  type PipelineParts,
  type Refused,
  type Verdict,
} from './admission/pipeline.js';
export type { AdmissionRequest, Stage } from './admission/stage.js';
export {
  type KeyAdmission,
  keyStage,
  type ProcessAdmission,
  shedderStage,
  turnBudgetStage,
} from './admission/stages.js';
export { ConcurrencyStage } from './admission/concurrency-stage.js';
export {
  TURN_BUDGET_DEFAULTS,
  TurnBudget,
  type TurnBudgetOptions,
  turnBudgetFor,
} from './admission/turn-budget.js';
export { GovernorFeed } from './adapters/governor-feed.js';
