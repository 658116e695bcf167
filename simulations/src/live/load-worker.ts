/**
 * The load generator as its own process, so that the client never shares a CPU turn with the
 * server it measures. Driven over IPC (`child_process.fork`):
 *   parent → { type: 'start', options }   (LoadGeneratorOptions without callbacks)
 *   worker → { type: 'second', second }   after each second of the run
 *   worker → { type: 'done', result }     then the worker exits
 *   worker → { type: 'error', message }   then the worker exits with code 1
 * The worker exits when its parent goes away.
 */
import { type LoadGeneratorOptions, runLoad } from './load-generator.js';

type StartMessage = { type: 'start'; options: Omit<LoadGeneratorOptions, 'onSecond'> };

if (process.send === undefined) {
  console.error('load-worker.js is started by the live harness over IPC (child_process.fork)');
  process.exit(2);
}

process.on('disconnect', () => process.exit(0));
process.once('message', (msg: StartMessage) => {
  if (msg?.type !== 'start') return;
  runLoad({ ...msg.options, onSecond: (second) => process.send?.({ type: 'second', second }) })
    .then((result) => {
      process.send?.({ type: 'done', result }, () => process.exit(0));
    })
    .catch((err: unknown) => {
      process.send?.({ type: 'error', message: (err as Error).message ?? String(err) }, () =>
        process.exit(1),
      );
    });
});
