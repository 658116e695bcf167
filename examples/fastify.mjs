// Fastify 5 behind Spillway: per-client limits that follow the governor, and 503s when the process is overloaded.
import Fastify from 'fastify';
import { createGovernor, createLimiter, Shedder } from 'spillway';
import spillway from 'spillway/fastify';

// The governor samples event-loop delay and memory every 250 ms (the default signals).
const governor = createGovernor().start();

const app = Fastify();
await app.register(spillway, {
  // 20 requests a second per client address, bursts of 40; both shrink when the governor cuts.
  limiter: createLimiter({ ratePerSec: 20, burst: 40, factor: governor }),
  // When the process itself is overloaded: 503, lowest priorities first.
  shedder: new Shedder({ factor: governor }),
  bypass: ['/health'],
});
app.get('/', async () => 'hello\n');
app.get('/health', async () => 'ok\n');

const address = await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' });
console.log(`listening on ${address}`);
