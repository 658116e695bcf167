/**
 * The live server as its own process, driven over IPC (`child_process.fork`, options as JSON in
 * argv[2]):
 *   worker → { type: 'ready', port, readyAtEpochMs }
 *   worker → { type: 'second', second }          the server's view of each second, as it ends
 *   parent → { type: 'stop' }
 *   worker → { type: 'stats', stats }            then it closes and exits
 *   worker → { type: 'error', message }          on a failure to start (exit code 1)
 * It exits when its parent goes away.
 */
import { type LiveServerOptions, startServer } from './server.js';

if (process.send === undefined) {
  console.error('server-worker.js is started by the live harness over IPC (child_process.fork)');
  process.exit(2);
}

const options = JSON.parse(process.argv[2] ?? '{}') as LiveServerOptions;
process.on('disconnect', () => process.exit(0));

startServer(options).then(
  (server) => {
    let sent = 0;
    const forward = setInterval(() => {
      const seconds = server.stats().seconds;
      while (sent < seconds.length) process.send?.({ type: 'second', second: seconds[sent++] });
    }, 1000);
    forward.unref();
    process.on('message', (msg: { type?: string }) => {
      if (msg?.type !== 'stop') return;
      clearInterval(forward);
      const stats = server.stats();
      process.send?.({ type: 'stats', stats }, () => {
        server.close().finally(() => process.exit(0));
      });
    });
    process.send?.({ type: 'ready', port: server.port, readyAtEpochMs: server.readyAtEpochMs });
  },
  (err: unknown) => {
    process.send?.({ type: 'error', message: (err as Error).message ?? String(err) }, () => process.exit(1));
  },
);
