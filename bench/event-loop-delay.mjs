/**
 * What the event-loop-delay signal reads on an idle, a busy and a stalled loop (the figures behind
 * its default target and limit, docs/signals.md). `node bench/event-loop-delay.mjs` after
 * `npm run build`: six phases of 4 s; `--smoke` runs each for 0.5 s. Quote `uptime` with the figures.
 */
import { eventLoopDelay } from '../dist/signals/event-loop-delay.js';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function busy(ms) {
  const e = performance.now() + ms;
  while (performance.now() < e);
}
const SMOKE = process.argv.includes('--smoke');
async function phase(name, seconds, work) {
  if (SMOKE) seconds = 0.5;
  const s = eventLoopDelay({ intervalMs: 250 });
  s.start();
  let stop = false;
  const loop = work ? work(() => stop) : Promise.resolve();
  const vals = [];
  const t0 = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      vals.push(s.sample(performance.now()));
      if (performance.now() - t0 > seconds * 1000) resolve();
      else setTimeout(tick, 250);
    };
    setTimeout(tick, 250);
  });
  stop = true;
  await loop;
  s.stop();
  vals.sort((a, b) => a - b);
  const med = vals[vals.length >> 1];
  console.log(
    `${name}: samples ${vals.length}, median ${med?.toFixed(1)} ms, max ${vals.at(-1)?.toFixed(1)} ms`,
  );
}
// duty cycle: chunks of `chunk` ms CPU, spaced so the loop is busy `duty` of the time
const duty = (chunk, share) => async (stopped) => {
  while (!stopped()) {
    busy(chunk);
    await sleep(0);
    if (share < 1) {
      const idle = chunk * (1 / share - 1);
      if (idle >= 1) await sleep(idle);
    }
  }
};
await phase('idle', 4);
await phase('50% busy, 2 ms turns', 4, duty(2, 0.5));
await phase('90% busy, 2 ms turns', 4, duty(2, 0.9));
await phase('100% busy, 2 ms turns', 4, duty(2, 1));
await phase('100% busy, 20 ms turns', 4, duty(20, 1));
await phase('one 100 ms block per 500 ms', 4, async (stopped) => {
  while (!stopped()) {
    busy(100);
    await sleep(400);
  }
});
