// Express 5 behind Spillway: per-client limits that follow the governor, and 503s when the process is overloaded.
import express from 'express';
import { createGovernor, createLimiter, Shedder } from 'spillway';
import { createMiddleware } from 'spillway/express';

// The governor samples event-loop delay and memory every 250 ms (the default signals).
const governor = createGovernor().start();

const app = express();
app.use(
  createMiddleware({
    // 20 requests a second per client address, bursts of 40; both shrink when the governor cuts.
    limiter: createLimiter({ ratePerSec: 20, burst: 40, factor: governor }),
    // When the process itself is overloaded: 503, lowest priorities first.
    shedder: new Shedder({ factor: governor }),
    bypass: ['/health'],
  }),
);
app.get('/', (_req, res) => res.send('hello\n'));
app.get('/health', (_req, res) => res.send('ok\n'));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
