// `spillway/prometheus`: Spillway's metrics for prom-client (an optional peer dependency).
export { metricsHandler } from './handler.js';
export {
  createMetrics,
  METRICS_DEFAULTS,
  type MetricsOptions,
  type ObservableLimiter,
  type ObserveOptions,
  QUEUE_WAIT_BUCKETS,
  RESPONSE_BUCKETS,
  SpillwayMetrics,
} from './metrics.js';
