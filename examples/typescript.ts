// The Express example in TypeScript (module and moduleResolution "nodenext"; needs @types/express).
import express, { type Request, type Response } from 'express';
import type { AddressInfo } from 'node:net';
import { createGovernor, createLimiter, type Governor, Shedder } from 'spillway';
import { createMiddleware } from 'spillway/express';

// The governor samples event-loop delay and memory every 250 ms (the default signals).
export const governor: Governor = createGovernor().start();

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
app.get('/', (_req: Request, res: Response) => {
  res.send('hello\n');
});
app.get('/health', (_req: Request, res: Response) => {
  res.send('ok\n');
});

export const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
