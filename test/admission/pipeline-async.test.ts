// The pipeline with a stage that decides remotely (a key limiter over a shared store): the promise
// is awaited and charging stays all-or-nothing across the await, including when the caller gives
// up (its signal aborts) while the remote answer is pending. No real time: promises settled by hand.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { admissionPipeline, Pipeline } from '../../src/admission/pipeline.js';
import type { AdmissionRequest, Stage } from '../../src/admission/stage.js';
import { keyStage, shedderStage } from '../../src/admission/stages.js';
import { ManualClock } from '../../src/clock.js';
import { ADMITTED_UNLIMITED } from '../../src/limiters/decisions.js';
import { ConcurrencyLimiter } from '../../src/limiters/concurrency/limiter.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import type { Decision } from '../../src/limiters/types.js';
import { MemoryStore } from '../../src/stores/memory.js';

const REFUSED: Decision = Object.freeze({
  allowed: false,
  reason: 'limited',
  remaining: 0,
  limit: 1,
  retryAfterMs: 500,
  resetMs: 500,
  factor: 1,
});

interface Req extends AdmissionRequest {
  signal?: AbortSignal;
}

/** A stage that answers with a promise the test settles, and counts what it holds. */
class Remote implements Stage<Req> {
  readonly name = 'key' as const;
  readonly waits = false;
  readonly quota = true;
  held = 0;
  refunds = 0;
  readonly pending: { resolve: (d: Decision) => void; reject: (e: unknown) => void }[] = [];
  admit(): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      this.pending.push({
        resolve: (d) => {
          if (d.allowed) this.held++;
          resolve(d);
        },
        reject,
      });
    });
  }
  refund(): void {
    this.refunds++;
    this.held--;
  }
}

/** A synchronous stage with a number of tokens, optionally peekable. */
class Sync implements Stage<Req> {
  readonly name = 'shedder' as const;
  readonly waits = false;
  readonly quota = false;
  held = 0;
  asked = 0;
  peek?: (req: Req) => Decision;
  constructor(
    public tokens: number,
    peekable = false,
  ) {
    if (peekable) this.peek = () => (this.tokens > 0 ? ADMITTED_UNLIMITED : REFUSED);
  }
  admit(): Decision {
    this.asked++;
    if (this.tokens <= 0) return REFUSED;
    this.tokens--;
    this.held++;
    return ADMITTED_UNLIMITED;
  }
  refund(): void {
    this.tokens++;
    this.held--;
  }
}

const admitted = (remaining = 3): Decision => ({ ...ADMITTED_UNLIMITED, remaining, limit: 4 });
const flush = () => new Promise<void>((r) => setImmediate(r));

describe('Pipeline with a remote stage', () => {
  it('answers with a promise only once a stage does; later stages run after the await', async () => {
    const remote = new Remote();
    const after = new Sync(1);
    const p = new Pipeline<Req>([remote, after]);
    const run = p.run({ key: 'k', priority: 'normal', cost: 1 });
    expect(run).toBeInstanceOf(Promise);
    expect(after.asked).toBe(0);
    remote.pending[0]!.resolve(admitted());
    const v = await run;
    expect(v).toMatchObject({ allowed: true, quota: { remaining: 3 } });
    expect([remote.held, after.held]).toEqual([1, 1]);
  });

  it('a later refusal after the await refunds the remote stage, and the quota shows it', async () => {
    const remote = new Remote();
    const after = new Sync(0);
    const run = new Pipeline<Req>([remote, after]).run({ key: 'k', priority: 'normal', cost: 1 });
    remote.pending[0]!.resolve(admitted(3));
    const v = await run;
    expect(v).toMatchObject({ allowed: false, stage: after, quota: { remaining: 4 } });
    expect(remote.held).toBe(0);
    expect(remote.refunds).toBe(1);
  });

  it('a caller that gave up while the remote stage decided: refunded once, nothing later charged', async () => {
    const remote = new Remote();
    const after = new Sync(5);
    const ac = new AbortController();
    const req: Req = { key: 'k', priority: 'normal', cost: 1 };
    const run = new Pipeline<Req>([remote, after]).run(req);
    // The caller sets the signal once it knows the run is pending (as the HTTP guard does).
    req.signal = ac.signal;
    ac.abort(new Error('client left'));
    remote.pending[0]!.resolve(admitted());
    await expect(run).rejects.toThrow('client left');
    expect(remote.held).toBe(0);
    expect(remote.refunds).toBe(1);
    expect(after.asked).toBe(0);
  });

  it('a remote refusal after the caller gave up refunds nothing (nothing was charged)', async () => {
    const remote = new Remote();
    const ac = new AbortController();
    const req: Req = { key: 'k', priority: 'normal', cost: 1, signal: ac.signal };
    const run = new Pipeline<Req>([remote, new Sync(5)]).run(req);
    ac.abort();
    remote.pending[0]!.resolve(REFUSED);
    expect(await run).toMatchObject({ allowed: false, stage: remote });
    expect(remote.refunds).toBe(0);
  });

  it('a peeked stage before the remote one is charged after it; its refusal refunds the remote one', async () => {
    const first = new Sync(1, true);
    const remote = new Remote();
    const run = new Pipeline<Req>([first, remote]).run({ key: 'k', priority: 'normal', cost: 1 });
    // Someone else takes the peeked stage's last token while the remote stage decides.
    first.tokens = 0;
    remote.pending[0]!.resolve(admitted());
    expect(await run).toMatchObject({ allowed: false, stage: first });
    expect([first.held, remote.held, remote.refunds]).toEqual([0, 0, 1]);
  });

  it('rule 5a across the await: a refusal by a stage that spendsQuota keeps the remote quota charged', async () => {
    const remote = new Remote();
    const after = Object.assign(new Sync(0), { spendsQuota: true });
    const run = new Pipeline<Req>([remote, after]).run({ key: 'k', priority: 'normal', cost: 1 });
    remote.pending[0]!.resolve(admitted(3));
    const v = await run;
    expect(v).toMatchObject({ allowed: false, stage: after, quota: { remaining: 3 } });
    expect(remote.held).toBe(1);
    expect(remote.refunds).toBe(0);
  });

  it('rule 5a after a wait: a peeked quota is charged when a waiting stage that spendsQuota refuses', async () => {
    const quota = Object.assign(new Sync(2, true), { quota: true });
    let settle: (d: Decision) => void = () => {};
    const waiting: Stage<Req> = {
      name: 'concurrency',
      waits: true,
      quota: false,
      spendsQuota: true,
      admit: () => new Promise<Decision>((r) => (settle = r)),
    };
    const ac = new AbortController();
    const run = new Pipeline<Req>([quota, waiting]).run({ key: 'k', priority: 'normal', cost: 1, signal: ac.signal });
    expect(quota.held).toBe(0); // peeked only, while the request waits
    settle(REFUSED);
    const v = await run;
    expect(v).toMatchObject({ allowed: false, stage: waiting });
    expect(quota.held).toBe(1);
  });

  it('a remote stage that rejects: the stages charged before it are refunded, the error goes on', async () => {
    const before = new Sync(1);
    const remote = new Remote();
    const run = new Pipeline<Req>([before, remote]).run({ key: 'k', priority: 'normal', cost: 1 });
    remote.pending[0]!.reject(new Error('store broke'));
    await expect(run).rejects.toThrow('store broke');
    expect(before.held).toBe(0);
    expect(before.tokens).toBe(1);
  });

  it('runSync refuses a remote stage with a TypeError and gives back what the run admits later', async () => {
    const remote = new Remote();
    const p = new Pipeline<Req>([remote]);
    expect(() => p.runSync({ key: 'k', priority: 'normal', cost: 1 })).toThrow(TypeError);
    remote.pending[0]!.resolve(admitted());
    await flush();
    expect(remote.held).toBe(0);
  });

  it('property: whatever settles how, in any order, a stage holds a charge only for admitted runs', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            remoteAdmits: fc.boolean(),
            afterTokens: fc.integer({ min: 0, max: 1 }),
            abort: fc.constantFrom('never', 'before', 'after'),
          }),
          { minLength: 1, maxLength: 12 },
        ),
        async (cases) => {
          const remote = new Remote();
          const after = new Sync(0);
          const p = new Pipeline<Req>([remote, after]);
          const runs = cases.map((c) => {
            const ac = new AbortController();
            const req: Req = { key: 'k', priority: 'normal', cost: 1, signal: ac.signal };
            const run = p.run(req) as Promise<unknown>;
            return {
              c,
              ac,
              run: run.then(
                (v) => v,
                () => 'aborted' as const,
              ),
            };
          });
          let admittedRuns = 0;
          for (let i = 0; i < runs.length; i++) {
            const { c, ac, run } = runs[i]!;
            after.tokens = c.afterTokens;
            if (c.abort === 'before') ac.abort();
            remote.pending[i]!.resolve(c.remoteAdmits ? admitted() : REFUSED);
            const v = await run;
            if (c.abort === 'after') ac.abort(); // too late: the run has been decided
            if (v !== 'aborted' && (v as { allowed: boolean }).allowed) admittedRuns++;
            after.tokens = 0;
          }
          expect(remote.held).toBe(admittedRuns);
          expect(after.held).toBe(admittedRuns);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('the key stage over a StoreLimiter (createLimiter({ store }))', () => {
  it('is charged in place and refunded when the shedder refuses: the key keeps its quota', async () => {
    const clock = new ManualClock();
    const store = new MemoryStore({ clock });
    const limiter = createLimiter({ store, ratePerSec: 1, burst: 3, clock });
    const shedding = new Shedder({ factor: new ManualFactor(0), ratePerSec: 100, clock });
    const key = keyStage(limiter);
    expect(key.peek).toBeUndefined();
    expect(key.refund).toBeDefined();
    const p = new Pipeline([key, shedderStage(shedding)]);
    for (let i = 0; i < 5; i++) {
      const v = await p.run({ key: 'u', priority: 'normal', cost: 1 });
      expect(v).toMatchObject({ allowed: false, stage: { name: 'shedder' } });
    }
    // Refunds are sent without waiting; they are done once the store answered them.
    await flush();
    expect((await limiter.peek('u')).remaining).toBeCloseTo(3, 6);

    const open = new Pipeline([keyStage(limiter)]);
    const statuses: boolean[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push(
        ((await open.run({ key: 'u', priority: 'normal', cost: 1 })) as { allowed: boolean }).allowed,
      );
    expect(statuses).toEqual([true, true, true, false]);
  });

  it('the in-memory limiter stays synchronous: charged in its place, refunded on a later refusal, no promise', () => {
    const limiter = createLimiter({ ratePerSec: 1, burst: 2, clock: new ManualClock() });
    const key = keyStage(limiter);
    expect(key.peek).toBeUndefined();
    expect(key.refund).toBeDefined();
    const v = new Pipeline([key]).run({ key: 'u', priority: 'normal', cost: 1 });
    expect(v).not.toBeInstanceOf(Promise);
    expect(v).toMatchObject({ allowed: true });
  });

  it('a Store that refused because it could not decide is shed (503), not limited (429)', async () => {
    const store = new MemoryStore();
    const down = {
      take: () => ({ allowed: false, remaining: 0, retryAfterMs: 700, resetMs: 700, unavailable: true }),
      peek: store.peek.bind(store),
      refund: store.refund.bind(store),
      reset: store.reset.bind(store),
      close: store.close.bind(store),
    };
    const limiter = createLimiter({ store: down, ratePerSec: 1, burst: 3 });
    const d = await limiter.take('u');
    expect(d).toMatchObject({ allowed: false, reason: 'shed', retryAfterMs: 700 });
    const full = await createLimiter({ store, ratePerSec: 0.001, burst: 1 }).take('u', { cost: 1 });
    expect(full.allowed).toBe(true);
  });
});

describe('the in-memory key limiter charged in its place (rules 3 and 4)', () => {
  const flush = () => new Promise((r) => setImmediate(r));

  it('a request waiting in the concurrency stage holds its key quota: a later one of the same key is refused at once (429), not queued to be refused after its wait', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 0.001, burst: 1, clock });
    const concurrency = new ConcurrencyLimiter({ limit: 1, maxQueue: 10, maxWaitMs: 10_000, clock });
    const p = admissionPipeline({ limiter, concurrency });
    const run = (key: string) => p.run({ key, cost: 1, priority: 'normal', signal: new AbortController().signal });
    const x = { key: 'x', cost: 1, priority: 'normal' as const, signal: new AbortController().signal };
    expect(p.run(x)).toMatchObject({ allowed: true }); // holds the one slot
    const waiting = run('k'); // queues, its key's one token reserved
    expect(waiting).toBeInstanceOf(Promise);
    const late = run('k');
    expect(late).not.toBeInstanceOf(Promise);
    expect(late).toMatchObject({ allowed: false, stage: { name: 'key' }, decision: { reason: 'limited' } });
    p.release(x);
    await flush();
    expect(await waiting).toMatchObject({ allowed: true, quota: { allowed: true } });
    expect(concurrency.waiting).toBe(0);
    limiter.close();
    concurrency.close();
  });

  it('a request refused after its wait in the concurrency stage gets its key quota back', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 0.001, burst: 2, clock });
    const concurrency = new ConcurrencyLimiter({ limit: 1, maxQueue: 10, maxWaitMs: 50, clock });
    const p = admissionPipeline({ limiter, concurrency });
    const run = (key: string) => p.run({ key, cost: 1, priority: 'normal', signal: new AbortController().signal });
    expect(run('x')).toMatchObject({ allowed: true });
    const waiting = run('k');
    expect(limiter.peek('k').remaining).toBe(0); // 1 held, and peeking 1 more leaves 0
    clock.advance(60);
    await flush();
    expect(await waiting).toMatchObject({ allowed: false, stage: { name: 'concurrency' } });
    expect(limiter.peek('k', { cost: 2 }).allowed).toBe(true);
    limiter.close();
    concurrency.close();
  });

  it('the waiting key stage (acquire, maxWaitMs > 0) is refunded on a later refusal too', async () => {
    const clock = new ManualClock();
    const limiter = createLimiter({ ratePerSec: 1, burst: 1, clock });
    const refuse: Stage = {
      name: 'shedder',
      waits: false,
      quota: false,
      admit: () => REFUSED,
    };
    const key = keyStage(limiter, 5000);
    expect(key.refund).toBeDefined();
    const p = new Pipeline([key, refuse]);
    const v = await p.run({ key: 'k', cost: 1, priority: 'normal', signal: new AbortController().signal });
    expect(v).toMatchObject({ allowed: false, stage: { name: 'shedder' } });
    expect(limiter.peek('k').allowed).toBe(true);
    limiter.close();
  });
});
