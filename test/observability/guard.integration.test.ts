// End to end: a real guard on node:http publishes its decisions; metrics, logs and traces hear them.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGuard } from '../../src/adapters/core.js';
import { ManualFactor } from '../../src/limiters/factor.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';
import { Shedder } from '../../src/limiters/shedder.js';
import { type LogEntry, logDecisions } from '../../src/observability/log.js';
import { enableTracing } from '../../src/observability/otel.js';
import { createMetrics } from '../../src/observability/prometheus/index.js';
import { find, parseExposition } from './exposition.js';

let server: Server;
let url: string;
const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('e2e');

beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
afterAll(async () => {
  context.disable();
  await provider.shutdown();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
});

describe('a real guard feeding metrics, logs and traces', () => {
  it('counts, logs and traces 429s and 503s as they happen', async () => {
    const registry = new Registry();
    const metrics = createMetrics({ registry });
    const entries: LogEntry[] = [];
    const log = logDecisions({ sink: (e) => entries.push(e), maxPerSec: Infinity });
    const tracing = await enableTracing();
    const factor = new ManualFactor(1);
    const guard = createGuard({
      name: 'web',
      limiter: createLimiter({ ratePerSec: 0.01, burst: 2 }),
      shedder: new Shedder({ factor, ratePerSec: 1000 }),
      turnBudgetMs: false,
      key: (req) => req.headers['x-user'] as string | undefined,
    });
    const handler = guard.wrap((_req, res) => {
      res.end('ok');
    });
    server = createServer((req, res) =>
      tracer.startActiveSpan('http', (span) => {
        res.on('finish', () => span.end());
        handler(req, res);
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const statuses: number[] = [];
      const as = (user: string) => fetch(url, { headers: { 'x-user': user } }).then((r) => r.status);
      for (let i = 0; i < 3; i++) statuses.push(await as('alice'));
      factor.set(0);
      statuses.push(await as('bob'));
      // alice: two within her burst, then over her quota; bob: within his, but the process sheds.
      expect(statuses).toEqual([200, 200, 429, 503]);

      const s = parseExposition(await registry.metrics());
      const byOutcome = Object.fromEntries(
        find(s, 'spillway_decisions_total', { name: 'web' }).map((x) => [x.labels['outcome'], x.value]),
      );
      expect(byOutcome).toEqual({ admitted: 2, limited: 1, shed: 1 });
      expect(
        find(s, 'spillway_decisions_total', { name: 'web', outcome: 'limited' })[0]!.labels['stage'],
      ).toBe('key');
      expect(find(s, 'spillway_decisions_total', { name: 'web', outcome: 'shed' })[0]!.labels['stage']).toBe(
        'shedder',
      );
      const logged = entries.filter((e) => e.event === 'spillway.decision') as {
        outcome: string;
        name: string;
      }[];
      expect(logged.map((e) => [e.name, e.outcome])).toEqual([
        ['web', 'limited'],
        ['web', 'shed'],
      ]);
      const spans = exporter.getFinishedSpans();
      expect(spans.map((x) => x.attributes['spillway.decision'])).toEqual([
        'admitted',
        'admitted',
        'limited',
        'shed',
      ]);
      expect(spans[3]!.attributes).toMatchObject({
        'spillway.name': 'web',
        'spillway.stage': 'shedder',
        'spillway.factor': 0,
      });
      expect(spans[2]!.attributes['spillway.retry_after_ms']).toBeGreaterThan(0);
    } finally {
      tracing.disable();
      log.close();
      metrics.close();
      guard.close();
    }
  });
});
