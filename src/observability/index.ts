// `spillway/observability`: decision logs and the diagnostics channel names and messages.
export {
  DECISION_CHANNEL,
  type DecisionMessage,
  type DecisionOutcome,
  type DecisionStage,
  FACTOR_CHANNEL,
  type FactorMessage,
  RESPONSE_CHANNEL,
  type ResponseMessage,
  STORE_CHANNEL,
  type StoreCircuitState,
  type StoreMessage,
} from './channels.js';
export { OTHER_ROUTE, priorityLabel, RouteLabels } from './labels.js';
export {
  type DecisionLog,
  type DecisionLogEntry,
  type DecisionLogStats,
  type FactorLogEntry,
  LOG_DECISIONS_DEFAULTS,
  type LogDecisionsOptions,
  type LogEntry,
  logDecisions,
} from './log.js';
