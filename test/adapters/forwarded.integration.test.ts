/**
 * A client behind a trusted proxy sends a malformed `Forwarded` line; the proxy appends its own line.
 * A raw socket client on 127.0.0.1 sends the exact bytes (repeated header lines, as a proxy that
 * appends a line produces), so nothing in between normalises them.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { protect } from '../../src/adapters/http.js';
import { createLimiter } from '../../src/limiters/keyed-limiter.js';

let server: Server | undefined;
afterEach(async () => {
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server!.close(() => r()));
  server = undefined;
});

async function start() {
  // One request per key per ~day: the second request with the same key is refused with 429.
  const limiter = createLimiter({ ratePerSec: 1 / 86_400, burst: 1 });
  const listener = protect((_req, res) => res.end('ok'), {
    limiter,
    trustProxy: 'loopback',
    forwardedHeader: 'forwarded',
  });
  server = createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, guard: listener.guard };
}

/** Sends `forwardedLines` as separate `Forwarded:` header lines on a fresh connection; resolves the status. */
function rawGet(port: number, forwardedLines: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(data);
      if (m !== null && data.includes('\r\n\r\n')) {
        socket.destroy();
        resolve(Number(m[1]));
      }
    });
    socket.on('error', reject);
    const head = forwardedLines.map((l) => `Forwarded: ${l}\r\n`).join('');
    socket.write(`GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n${head}Connection: close\r\n\r\n`, 'latin1');
  });
}

describe('Forwarded with an unclosed quote (raw socket, 127.0.0.1)', () => {
  it('a client cannot rotate its own key with `for="…` lines: all are keyed by the proxy and counted', async () => {
    const { port, guard } = await start();
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) statuses.push(await rawGet(port, [`for="9.9.9.${i}`, 'for=203.0.113.5']));
    // One key (the socket peer, the last trusted hop) for all five: one admitted, four refused.
    expect(statuses).toEqual([200, 429, 429, 429, 429]);
    expect(guard.malformedForwarded).toBe(5);
  });

  it('a client cannot spend a victim\'s quota with `for=<victim>;x="`', async () => {
    const { port, guard } = await start();
    const victim = '198.51.100.1';
    // The attacker (really 203.0.113.66 by its proxy's word) names the victim and swallows the proxy's entry.
    expect(await rawGet(port, [`for=${victim};x="`, 'for=203.0.113.66'])).toBe(200);
    // The victim's own first request, through the same proxy, is still admitted.
    expect(await rawGet(port, [`for=${victim}`])).toBe(200);
    expect(await rawGet(port, [`for=${victim}`])).toBe(429);
    expect(guard.malformedForwarded).toBe(1);
  });

  it('well-formed repeated lines still key by the rightmost untrusted entry', async () => {
    const { port, guard } = await start();
    expect(await rawGet(port, ['for=9.9.9.1', 'for=203.0.113.7'])).toBe(200);
    expect(await rawGet(port, ['for=9.9.9.2', 'for=203.0.113.7'])).toBe(429);
    expect(await rawGet(port, ['for=9.9.9.2', 'for=203.0.113.8'])).toBe(200);
    expect(guard.malformedForwarded).toBe(0);
  });
});
