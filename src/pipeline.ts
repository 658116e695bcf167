/**
 * `spillway/pipeline`: the admission pipeline's building blocks, for custom front doors and for
 * spillway-sim, which must run exactly what the HTTP adapters run ("one pipeline, everywhere").
 * Nothing but exports.
 */
export { type RetryAfterOptions, retryAfterSeconds } from './adapters/headers.js';
export { ADMITTED_UNLIMITED } from './limiters/decisions.js';
