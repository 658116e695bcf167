// The node:http example from CommonJS: require() loads spillway's ES modules on Node >= 20.19.
const { createServer } = require('node:http');
const { createGovernor, createLimiter, Shedder } = require('spillway');
const { createHttpGuard } = require('spillway/http');

// The governor samples event-loop delay and memory every 250 ms (the default signals).
const governor = createGovernor().start();

const guard = createHttpGuard({
  // 20 requests a second per client address, bursts of 40; both shrink when the governor cuts.
  limiter: createLimiter({ ratePerSec: 20, burst: 40, factor: governor }),
  // When the process itself is overloaded: 503, lowest priorities first.
  shedder: new Shedder({ factor: governor }),
  bypass: ['/health'],
});

const server = createServer(guard.wrap((_req, res) => res.end('hello\n')));
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
