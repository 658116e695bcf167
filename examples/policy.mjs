// node:http driven by a policy file: its routes, per-client limits and pool come from policy.json,
// and a running server takes every change of the file (a bad one is refused, the old one kept).
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createHttpGuard } from 'spillway/http';
import { loadPolicy, PolicyRuntime, watchPolicy } from 'spillway/policy';

const file = process.env.POLICY_FILE ?? fileURLToPath(new URL('./policy.json', import.meta.url));
const runtime = new PolicyRuntime(await loadPolicy(file)).start(); // the limiters follow its governor
runtime.on('reloaded', ({ changed }) => console.log(`policy reloaded: ${changed.join(', ')}`));
runtime.on('rejected', (err) => console.error(err.message));
watchPolicy(file, runtime);

// At most `pools.db.limit` requests in flight, the rest wait up to `maxWaitMs`; routes from the file.
const guard = createHttpGuard({ concurrency: runtime.pool('db') });
runtime.serve(guard);

const server = createServer(guard.wrap((_req, res) => res.end('hello\n')));
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
