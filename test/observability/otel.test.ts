import { execFileSync } from 'node:child_process';
import { channel } from 'node:diagnostics_channel';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECISION_CHANNEL, type DecisionMessage } from '../../src/observability/channels.js';
import { enableTracing, traceDecisions } from '../../src/observability/otel.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const decisions = channel(DECISION_CHANNEL);
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('spillway-test');
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
});
afterAll(async () => {
  context.disable();
  await provider.shutdown();
});

function decision(over: Partial<DecisionMessage>): DecisionMessage {
  return {
    name: 'api',
    outcome: 'shed',
    stage: 'shedder',
    reason: 'shed',
    priority: 'sheddable',
    route: 'search',
    factor: 0.4,
    limit: 12,
    retryAfterMs: 1500,
    ...over,
  };
}

describe('enableTracing with @opentelemetry/api and an in-memory exporter', () => {
  it('adds the decision attributes and an event to the active span', async () => {
    exporter.reset();
    const tracing = await enableTracing();
    expect(tracing.enabled).toBe(true);
    try {
      tracer.startActiveSpan('GET /search', (span) => {
        decisions.publish(decision({}));
        span.end();
      });
      tracer.startActiveSpan('GET /pool', async (span) => {
        await Promise.resolve();
        // Still the request's span after an await: the subscriber runs in the publisher's context.
        decisions.publish(
          decision({ outcome: 'queued', stage: 'concurrency', reason: 'queued', retryAfterMs: 0 }),
        );
        decisions.publish(
          decision({
            outcome: 'admitted',
            stage: 'concurrency',
            reason: 'ok',
            retryAfterMs: 0,
            queueWaitMs: 35,
            priority: 0.8,
          }),
        );
        span.end();
      });
      await new Promise((r) => setImmediate(r));
      // Outside any span: nothing to annotate, nothing breaks.
      decisions.publish(decision({}));
    } finally {
      tracing.disable();
    }
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['GET /search', 'GET /pool']);
    const [shed, pooled] = spans;
    expect(shed!.attributes).toEqual({
      'spillway.decision': 'shed',
      'spillway.reason': 'shed',
      'spillway.factor': 0.4,
      'spillway.limit': 12,
      'spillway.retry_after_ms': 1500,
      'spillway.policy': 'search',
      'spillway.priority': 'sheddable',
      'spillway.stage': 'shedder',
      'spillway.name': 'api',
    });
    expect(shed!.events.map((e) => [e.name, e.attributes?.['spillway.decision']])).toEqual([
      ['spillway.decision', 'shed'],
    ]);
    // The span keeps the last decision's attributes; each decision is an event.
    expect(pooled!.attributes).toMatchObject({
      'spillway.decision': 'admitted',
      'spillway.queue_wait_ms': 35,
      'spillway.priority': '0.8',
      'spillway.retry_after_ms': 0,
    });
    expect(pooled!.events.map((e) => e.attributes?.['spillway.decision'])).toEqual(['queued', 'admitted']);
  });

  it('leaves out an infinite retry, honours events: false and outcomes, and stops on disable()', () => {
    exporter.reset();
    const tracing = traceDecisions({ trace }, { events: false, outcomes: ['shed', 'limited'] });
    tracer.startActiveSpan('a', (span) => {
      decisions.publish(decision({ outcome: 'admitted', reason: 'ok' }));
      decisions.publish(decision({ retryAfterMs: Infinity }));
      span.end();
    });
    tracing.disable();
    tracing.disable();
    expect(tracing.enabled).toBe(false);
    tracer.startActiveSpan('b', (span) => {
      decisions.publish(decision({}));
      span.end();
    });
    const [a, b] = exporter.getFinishedSpans();
    expect(a!.attributes['spillway.decision']).toBe('shed');
    expect('spillway.retry_after_ms' in a!.attributes).toBe(false);
    expect(a!.events).toEqual([]);
    expect(b!.attributes).toEqual({});
    expect(decisions.hasSubscribers).toBe(false);
  });

  it('refuses a module that is not the API', () => {
    expect(() => traceDecisions({} as never)).toThrow(/`api`/);
    expect(() => traceDecisions({ trace }, { events: 'yes' as never })).toThrow(/`events`/);
  });
});

describe('spillway/otel without @opentelemetry/api', () => {
  it('answers enabled: false with the reason, and decisions go on', () => {
    // The built package copied where no node_modules can be found: the optional peer is absent.
    const dir = mkdtempSync(join(tmpdir(), 'spillway-no-otel-'));
    try {
      cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
      const script = `
        import { channel } from 'node:diagnostics_channel';
        const { enableTracing } = await import('./dist/observability/otel.js');
        const t = await enableTracing();
        channel('spillway:decision').publish({ name: 'x', outcome: 'shed', stage: 'shedder', reason: 'shed',
          priority: 'normal', route: '/', factor: 0.5, limit: 1, retryAfterMs: 10 });
        t.disable();
        console.log(JSON.stringify({ enabled: t.enabled, reason: t.reason,
          subscribed: channel('spillway:decision').hasSubscribers }));
      `;
      writeFileSync(join(dir, 'run.mjs'), script);
      const out = execFileSync(process.execPath, [join(dir, 'run.mjs')], { cwd: dir, encoding: 'utf8' });
      const r = JSON.parse(out.trim()) as { enabled: boolean; reason: string; subscribed: boolean };
      expect(r.enabled).toBe(false);
      expect(r.reason).toMatch(/@opentelemetry\/api could not be loaded.*install it/);
      expect(r.subscribed).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
