/** Why a store call did not get an answer from Redis. Reported as events, never thrown at callers. */
export type RedisStoreErrorKind = 'timeout' | 'unavailable' | 'reply';

export class RedisStoreError extends Error {
  readonly code = 'ERR_SPILLWAY_REDIS_STORE';
  readonly kind: RedisStoreErrorKind;
  constructor(kind: RedisStoreErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisStoreError';
    this.kind = kind;
  }
}

export function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}
