// The README's quick start: a governor that watches the process, and per-user limits that follow it.
import { createGovernor, createLimiter } from 'spillway';

// Samples event-loop delay and memory every 250 ms (the default signals).
const governor = createGovernor({ floor: 0.05 });
governor.on('change', (record) => console.log(record.reason));
governor.start();

// 20 requests a second per user, bursts of 40; limits shrink with the governor's factor.
const perUser = createLimiter({ ratePerSec: 20, burst: 40, maxKeys: 100_000, factor: governor });

let admitted = 0;
let refused = 0;
for (let i = 0; i < 100; i++) {
  const d = perUser.take('user-42', { cost: 1, priority: 'normal' });
  if (d.allowed) admitted++;
  else refused++;
}
const last = perUser.take('user-42');
console.log(
  `admitted ${admitted}, refused ${refused}: ${last.reason}, retry after ${Math.ceil(last.retryAfterMs)} ms`,
);

perUser.close();
governor.stop();
