import { channel } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { isConfigError } from '../../src/errors.js';
import { createGovernor } from '../../src/governor/index.js';
import { DECISION_CHANNEL, type DecisionMessage } from '../../src/observability/channels.js';
import { type LogEntry, logDecisions } from '../../src/observability/log.js';
import { scripted } from '../governor/helpers.js';

const decisions = channel(DECISION_CHANNEL);

function decision(over: Partial<DecisionMessage>): DecisionMessage {
  return {
    name: 'api',
    outcome: 'shed',
    stage: 'shedder',
    reason: 'shed',
    priority: 'sheddable',
    route: '/search',
    factor: 0.42,
    limit: 12,
    retryAfterMs: 1000,
    ...over,
  };
}

describe('logDecisions', () => {
  it('logs refusals with their reason as plain objects, and not admissions', () => {
    const entries: LogEntry[] = [];
    const log = logDecisions({ sink: (e) => entries.push(e), clock: new ManualClock() });
    try {
      decisions.publish(decision({}));
      decisions.publish(decision({ outcome: 'admitted', reason: 'ok', retryAfterMs: 0 }));
      decisions.publish(
        decision({ outcome: 'limited', stage: 'key', reason: 'blocked', priority: 'normal' }),
      );
      decisions.publish(
        decision({
          outcome: 'timed_out',
          stage: 'concurrency',
          reason: 'deadline',
          queueWaitMs: 500,
          retryAfterMs: Infinity,
        }),
      );
    } finally {
      log.close();
    }
    expect(entries).toEqual([
      {
        event: 'spillway.decision',
        level: 'warn',
        msg: 'spillway api: shed at shedder for /search; sheddable, factor 0.42, limit 12, retry after 1000 ms',
        name: 'api',
        outcome: 'shed',
        stage: 'shedder',
        reason: 'shed',
        priority: 'sheddable',
        route: '/search',
        factor: 0.42,
        limit: 12,
        retryAfterMs: 1000,
      },
      expect.objectContaining({
        outcome: 'limited',
        reason: 'blocked',
        msg: 'spillway api: limited (blocked) at key for /search; normal, factor 0.42, limit 12, retry after 1000 ms',
      }),
      expect.objectContaining({
        outcome: 'timed_out',
        retryAfterMs: null,
        queueWaitMs: 500,
        msg: 'spillway api: timed_out (deadline) at concurrency for /search; sheddable, factor 0.42, limit 12, waited 500 ms, no retry at this factor',
      }),
    ]);
    // Plain objects: they survive JSON unchanged.
    for (const e of entries) expect(JSON.parse(JSON.stringify(e))).toEqual(e);
    expect(log.stats).toEqual({ logged: 3, sampledOut: 0, suppressed: 0, sinkErrors: 0 });
    decisions.publish(decision({}));
    expect(entries.length).toBe(3);
  });

  it('samples: with sample 0.25 and a scripted random source, logs exactly the draws below 0.25', () => {
    const draws = [0.1, 0.3, 0.24, 0.25, 0.9, 0.0, 0.5, 0.6];
    let i = 0;
    const entries: LogEntry[] = [];
    const log = logDecisions({
      sink: (e) => entries.push(e),
      sample: 0.25,
      random: () => draws[i++]!,
      clock: new ManualClock(),
    });
    for (let k = 0; k < draws.length; k++) decisions.publish(decision({ limit: k }));
    log.close();
    expect(entries.map((e) => (e as { limit: number }).limit)).toEqual([0, 2, 5]);
    expect(log.stats.sampledOut).toBe(5);
  });

  it('caps entries per second and says how many it dropped', () => {
    const clock = new ManualClock();
    const entries: LogEntry[] = [];
    const log = logDecisions({ sink: (e) => entries.push(e), maxPerSec: 2, clock });
    for (let k = 0; k < 5; k++) decisions.publish(decision({ limit: k }));
    clock.advance(1000);
    decisions.publish(decision({ limit: 5 }));
    log.close();
    expect(
      entries.map((e) => [(e as { limit: number }).limit, (e as { suppressed?: number }).suppressed]),
    ).toEqual([
      [0, undefined],
      [1, undefined],
      [5, 3],
    ]);
    expect(log.stats.suppressed).toBe(3);
  });

  it('logs every factor change once, as its human sentence, under the governor name given', () => {
    const clock = new ManualClock();
    let p = 0;
    const governor = createGovernor({
      clock,
      warmupMs: 0,
      cutIntervalMs: 0,
      signals: [scripted('load', () => p)],
    });
    const sentences: string[] = [];
    governor.on('change', (r) => sentences.push(r.reason));
    const entries: LogEntry[] = [];
    const log = logDecisions({ sink: (e) => entries.push(e), governors: { api: governor } });
    governor.start();
    p = 0.95;
    clock.advance(2000);
    p = 0;
    clock.advance(20_000);
    governor.stop();
    log.close();
    expect(sentences.length).toBeGreaterThan(2);
    expect(entries.map((e) => e.msg)).toEqual(sentences);
    const first = entries.find((e) => e.event === 'spillway.factor' && e.level === 'warn');
    expect(first).toMatchObject({
      event: 'spillway.factor',
      name: 'api',
      dominantSignal: 'load',
      state: 'engaged',
    });
    expect(first!.msg).toMatch(/^engaged: load 0.95 > target 0/);
  });

  it('survives a throwing sink and counts it', () => {
    const log = logDecisions({
      sink: () => {
        throw new Error('disk full');
      },
      clock: new ManualClock(),
    });
    expect(() => decisions.publish(decision({}))).not.toThrow();
    log.close();
    expect(log.stats).toMatchObject({ logged: 0, sinkErrors: 1 });
  });

  it('refuses bad options with a ConfigError naming the option', () => {
    const sink = () => {};
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'sink'],
      [{ sink, sample: 2 }, 'sample'],
      [{ sink, outcomes: ['dropped'] }, 'outcomes[0]'],
      [{ sink, maxPerSec: 0 }, 'maxPerSec'],
      [{ sink, factorChanges: 1 }, 'factorChanges'],
      [{ sink, governors: { api: {} } }, 'governors.api'],
    ];
    for (const [options, option] of cases) {
      let error: unknown;
      try {
        logDecisions(options as never).close();
      } catch (e) {
        error = e;
      }
      expect(isConfigError(error) && (error as { option: string }).option, option).toBe(option);
    }
  });
});
