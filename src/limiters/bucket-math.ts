/**
 * The arithmetic of one token bucket, as pure functions of numbers: no state, no clock. Shared by
 * the keyed limiter's compact per-key state and its global bucket; `TokenBucket` keeps the same
 * rules (and the same tolerance, TOKEN_EPSILON of the burst).
 */

/**
 * Tokens after `elapsedMs` of refill at `ratePerMs` (already scaled by the factor), capped at
 * `capacity`. A negative balance (a reservation) refills the same way. `elapsedMs <= 0` leaves
 * the tokens as they are.
 */
export function refill(tokens: number, elapsedMs: number, ratePerMs: number, capacity: number): number {
  if (!(elapsedMs > 0)) return tokens;
  const t = tokens + ratePerMs * elapsedMs;
  return Math.min(t, capacity);
}

/**
 * Milliseconds until `tokens` reach `needed` at `ratePerMs` (already scaled): 0 when within `eps`
 * already, Infinity when `needed` exceeds `capacity` (beyond `eps`) or the rate is 0.
 */
export function waitMs(
  tokens: number,
  needed: number,
  ratePerMs: number,
  capacity: number,
  eps: number,
): number {
  const deficit = needed - tokens;
  if (deficit <= eps) return 0;
  if (ratePerMs === 0 || needed > capacity + eps) return Infinity;
  return deficit / ratePerMs;
}
