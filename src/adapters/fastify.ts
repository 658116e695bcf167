/**
 * `spillway/fastify`: the guard as a Fastify 5 plugin on the `onRequest` hook, the earliest point
 * after routing, before any body is read. It decorates the instance with `spillway` (the guard),
 * and closes with the server: `preClose` refuses every request still waiting in queueing mode, so
 * `fastify.close()` is not held up by them.
 *
 * ```ts
 * import Fastify from 'fastify';
 * import spillway from 'spillway/fastify';
 * const app = Fastify();
 * await app.register(spillway, { limiter, shedder, bypass: ['/health'] });
 * ```
 */
import type { FastifyPluginCallback, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { createGuard, type HttpGuard, type HttpGuardOptions, type Outcome } from './core.js';

export {
  type GuardSignalsOptions,
  HttpGuard,
  type HttpGuardEvents,
  type InvalidValue,
  type HttpGuardOptions,
  type KeyAdmission,
  type ProcessAdmission,
  type Refusal,
  type RoutePolicy,
} from './core.js';
export { PROBLEM_TYPES } from './headers.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The Spillway guard of this instance: `inFlight`, `queued`, `signals()`, `status()`. */
    spillway: HttpGuard;
  }
}

/** Options Fastify itself gives meaning to in `register`; they are not the guard's. */
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers']);

const spillwayPlugin: FastifyPluginCallback<HttpGuardOptions> = (fastify, options, done) => {
  const guardOptions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) if (!REGISTER_OPTIONS.has(k)) guardOptions[k] = v;
  const guard = createGuard(guardOptions as HttpGuardOptions);
  fastify.decorate('spillway', guard);

  const apply = (
    o: Outcome,
    request: { raw: Parameters<HttpGuard['check']>[0] },
    reply: FastifyReply,
    next: () => void,
  ): void => {
    switch (o.kind) {
      case 'pass':
        next();
        return;
      case 'status':
        reply.code(200).header('cache-control', 'no-store').send(guard.status());
        return;
      case 'gone':
        // The client left while waiting: nothing to send, and nothing more for Fastify to do.
        reply.hijack();
        return;
      case 'refused': {
        if (guard.customRefusal) {
          reply.hijack();
          guard.sendRefusal(request.raw, reply.raw, o.refusal);
          return;
        }
        const { headers, body } = guard.responseFor(o.refusal, request.raw);
        const { 'content-length': _length, ...rest } = headers;
        reply.code(o.refusal.status).headers(rest).send(body);
        return;
      }
    }
  };

  fastify.addHook('onRequest', (request, reply, hookDone) => {
    let outcome: Outcome | Promise<Outcome>;
    try {
      // The RateLimit fields go on the reply, sent with Fastify's own headers in one writeHead.
      outcome = guard.check(request.raw, reply.raw, reply);
    } catch (err) {
      hookDone(err as Error);
      return;
    }
    // `apply` calls `next` with no argument: Fastify's `hookDone` serves as it is.
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => apply(o, request, reply, hookDone),
        (err: Error) => hookDone(err),
      );
    } else if (outcome.kind === 'pass') {
      hookDone();
    } else {
      apply(outcome, request, reply, hookDone);
    }
  });
  fastify.addHook('preClose', (hookDone) => {
    guard.close();
    hookDone();
  });
  fastify.addHook('onClose', (_instance, hookDone) => {
    guard.close();
    hookDone();
  });
  done();
};

/** The plugin (fastify-plugin metadata: name `spillway`, fastify `5.x`); register it with HttpGuardOptions. */
export const spillway = fp(spillwayPlugin, { name: 'spillway', fastify: '5.x' });
export default spillway;
