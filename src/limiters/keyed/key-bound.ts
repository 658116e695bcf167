/**
 * The memory a key can cost is bounded: a key longer than MAX_KEY_BYTES (UTF-8) is held, and sent
 * to a store, as a fixed-size SHA-256 digest instead of itself. `maxKeys` bounds the count of keys;
 * this bounds the bytes of each, so a client sending 64 KB keys (or a 15 KB header used as the key)
 * cannot grow the heap by gigabytes. Two long keys share a bucket only if their digests collide.
 *
 * The digest form starts with a NUL character, which no key built from HTTP header text contains,
 * so a digest never names the same bucket as a short key.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';

/** Keys longer than this many bytes (UTF-8) are replaced by their digest. */
export const MAX_KEY_BYTES = 256;
/**
 * A string of at most this many UTF-16 code units is at most MAX_KEY_BYTES bytes in UTF-8 (3 bytes
 * per unit at most), so the hot path only measures longer ones.
 */
export const MAX_INLINE_KEY_CHARS = Math.floor(MAX_KEY_BYTES / 3);

/** `key` itself when it is at most MAX_KEY_BYTES bytes long, else `\0sha256:` and its base64 digest. */
export function boundKey(key: string): string {
  if (key.length <= MAX_INLINE_KEY_CHARS || Buffer.byteLength(key, 'utf8') <= MAX_KEY_BYTES) return key;
  return `\0sha256:${createHash('sha256').update(key, 'utf8').digest('base64')}`;
}
