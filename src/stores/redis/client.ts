/**
 * One thin adapter over the Redis clients a user already has: ioredis and its fork iovalkey
 * (standalone `Redis` and `Cluster`), and node-redis v5 (`createClient` and `createCluster`).
 * The caller passes its client; the kind is detected from its shape, so this module imports none
 * of them. Cluster clients route each call by its key, which is why the store hash-tags keys.
 */
import { ConfigError } from '../../errors.js';

export type RedisClientKind = 'ioredis' | 'ioredis-cluster' | 'node-redis' | 'node-redis-cluster';

/** What the store needs from a client: run the script by SHA or by source, delete a key. */
export interface ScriptClient {
  readonly kind: RedisClientKind;
  /** Cluster clients route a call by its keys, which must then share a slot. */
  readonly cluster: boolean;
  evalsha(sha: string, keys: string[], args: string[]): Promise<unknown>;
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;
  del(key: string): Promise<unknown>;
  /** False when the client itself knows it has no connection (reconnecting, closed). */
  connected(): boolean;
}

/** The part of ioredis / iovalkey (`Redis` or `Cluster`) the adapter uses. */
export interface IoredisLike {
  readonly status: string;
  readonly isCluster?: boolean;
  /** ioredis flattens its arguments one level, so the keys and the arguments go as two arrays. */
  evalsha(sha: string, numKeys: number, keys: string[], args: string[]): Promise<unknown>;
  eval(script: string, numKeys: number, keys: string[], args: string[]): Promise<unknown>;
  del(...keys: string[]): Promise<unknown>;
}

/** The part of node-redis v5 (`createClient()` or `createCluster()`) the adapter uses. */
export interface NodeRedisLike {
  readonly isOpen: boolean;
  readonly isReady?: boolean;
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

export type RedisClient = IoredisLike | NodeRedisLike;

const IOREDIS_DOWN = new Set(['reconnecting', 'close', 'end']);

function isObject(v: unknown): v is Record<string, unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null;
}

/** Wraps the caller's client. Throws a ConfigError when it is none of the supported kinds. */
export function adaptClient(client: unknown): ScriptClient {
  if (isObject(client) && typeof client['evalSha'] === 'function' && 'isOpen' in client) {
    const c = client as unknown as NodeRedisLike;
    // A cluster has no isReady (it has `masters`); a standalone client has both flags.
    const cluster = !('isReady' in client) || Array.isArray(client['masters']);
    return {
      kind: cluster ? 'node-redis-cluster' : 'node-redis',
      cluster,
      evalsha: (sha, keys, args) => c.evalSha(sha, { keys, arguments: args }),
      eval: (script, keys, args) => c.eval(script, { keys, arguments: args }),
      del: (key) => c.del(key),
      connected: cluster ? () => c.isOpen : () => c.isOpen && c.isReady !== false,
    };
  }
  if (isObject(client) && typeof client['evalsha'] === 'function' && typeof client['status'] === 'string') {
    const c = client as unknown as IoredisLike;
    return {
      kind: c.isCluster === true ? 'ioredis-cluster' : 'ioredis',
      cluster: c.isCluster === true,
      // No spread: ioredis flattens the two arrays into the command itself.
      evalsha: (sha, keys, args) => c.evalsha(sha, keys.length, keys, args),
      eval: (script, keys, args) => c.eval(script, keys.length, keys, args),
      del: (key) => c.del(key),
      connected: () => !IOREDIS_DOWN.has(c.status),
    };
  }
  throw new ConfigError(
    'client',
    client,
    'an ioredis or iovalkey client (Redis or Cluster), or a node-redis v5 client (createClient or createCluster)',
  );
}
