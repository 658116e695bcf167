// The README's examples are real files, run here, and quoted verbatim in the README.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

describe('README examples', () => {
  it('quotes examples/quick-start.mjs verbatim, and it runs', () => {
    const source = readFileSync(join(root, 'examples/quick-start.mjs'), 'utf8');
    expect(readme).toContain(source.trim());
    const out = execFileSync(process.execPath, [join(root, 'examples/quick-start.mjs')], {
      cwd: root,
      encoding: 'utf8',
      timeout: 10_000,
    });
    // 40 of the burst admitted at once, the rest refused by the user's own quota, with an exact wait:
    // one token at 20 per second is 50 ms, less the real time the loop itself took.
    const m = /admitted (\d+), refused (\d+): limited, retry after (\d+) ms/.exec(out);
    expect(m, out).not.toBeNull();
    const [admitted, refused, retryMs] = m!.slice(1).map(Number) as [number, number, number];
    expect(admitted + refused).toBe(100);
    expect(admitted).toBeGreaterThanOrEqual(40);
    expect(admitted).toBeLessThanOrEqual(41); // one token may refill if the loop took 50 ms
    expect(retryMs).toBeGreaterThan(0);
    expect(retryMs).toBeLessThanOrEqual(50);
  });

  it('shows only commands that exist in package.json', () => {
    const scripts = Object.keys(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts);
    for (const m of readme.matchAll(/npm run ([\w:-]+)/g)) expect(scripts).toContain(m[1]);
    expect(readme).toContain('npm ci && npm test');
  });
});

// Every framework example, started as a user would (`node examples/x.mjs`) on a free port, then
// sent a burst from one client: the first 40 pass, the rest get 429 with Retry-After, /health
// always passes. The TypeScript example is type-checked and imported; the docs quote them verbatim.
const docs = ['docs/getting-started.md', 'docs/http.md']
  .map((f) => readFileSync(join(root, f), 'utf8'))
  .join('\n');

/** 120 requests from one client (three times the burst, so a slow, loaded machine still meets the limit), then /health; `ms` is how long the burst took (tokens refill meanwhile). */
async function burst(port: number): Promise<{
  ok: number;
  limited: number;
  shed: number;
  retryAfter: string | null;
  health: number;
  ms: number;
}> {
  const started = performance.now();
  const answers: Response[] = [];
  // In batches of 5: a whole burst in one event-loop turn could meet the loop-turn budget (503).
  for (let i = 0; i < 24; i++) {
    const batch = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const r = await fetch(`http://127.0.0.1:${port}/`);
        await r.text();
        return r;
      }),
    );
    answers.push(...batch);
  }
  const ms = performance.now() - started;
  let ok = 0;
  let limited = 0;
  let shed = 0;
  let retryAfter: string | null = null;
  for (const r of answers) {
    if (r.status === 200) ok++;
    else if (r.status === 429) {
      limited++;
      retryAfter = r.headers.get('retry-after');
    } else if (r.status === 503) shed++;
    else throw new Error(`unexpected status ${r.status}`);
  }
  const health = await fetch(`http://127.0.0.1:${port}/health`);
  await health.text();
  return { ok, limited, shed, retryAfter, health: health.status, ms };
}

function startExample(file: string): Promise<{ port: number; child: ReturnType<typeof spawn> }> {
  const child = spawn(process.execPath, [join(root, 'examples', file)], {
    cwd: root,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`${file} did not listen within 15 s`)), 15_000);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        done({ port: Number(m[1]), child });
      }
    });
    child.once('exit', (code) => fail(new Error(`${file} exited (${code}): ${out}`)));
  });
}

describe('framework examples', () => {
  for (const file of ['http.mjs', 'express.mjs', 'fastify.mjs', 'commonjs.cjs']) {
    it(`${file} runs, limits a client to its burst with 429 and Retry-After, and is quoted in the docs`, async () => {
      expect(docs).toContain(readFileSync(join(root, 'examples', file), 'utf8').trim());
      const { port, child } = await startExample(file);
      try {
        const r = await burst(port);
        // At most the burst of 40 plus what refilled at 20 a second while the requests came in (fewer
        // when the governor has cut the factor on a busy machine); a request shed with 503 spends no quota.
        expect(r.ok + r.limited + r.shed).toBe(120);
        expect(r.ok).toBeGreaterThan(0);
        expect(r.ok).toBeLessThanOrEqual(40 + Math.ceil((20 * r.ms) / 1000));
        expect(r.limited).toBeGreaterThan(0);
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(r.health).toBe(200);
      } finally {
        child.kill();
      }
    });
  }

  it('typescript.ts compiles under nodenext, runs, limits a client, and is quoted in the docs', async () => {
    expect(docs).toContain(readFileSync(join(root, 'examples/typescript.ts'), 'utf8').trim());
    const outDir = join(root, 'examples/.ts-out');
    const tsc = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules/typescript/bin/tsc'),
        ...['--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'],
        ...['--types', 'node', '--skipLibCheck', '--rootDir', join(root, 'examples'), '--outDir', outDir],
        join(root, 'examples/typescript.ts'),
      ],
      { cwd: root, encoding: 'utf8', timeout: 120_000 },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    const { port, child } = await startExample('.ts-out/typescript.js');
    try {
      const r = await burst(port);
      expect(r.ok + r.limited + r.shed).toBe(120);
      expect(r.ok).toBeLessThanOrEqual(40 + Math.ceil((20 * r.ms) / 1000));
      expect(r.limited).toBeGreaterThan(0);
      expect(r.health).toBe(200);
    } finally {
      child.kill();
    }
  }, 150_000);
});

// The policy example, on a copy of its policy file that the test then changes as an operator would.
describe('policy example', () => {
  it('policy.mjs runs from policy.json, takes a change of the file (a route without limiter), refuses a bad one, and is quoted in the docs', async () => {
    const policyDoc = readFileSync(join(root, 'docs/policies.md'), 'utf8');
    for (const f of ['policy.mjs', 'policy.json'])
      expect(policyDoc).toContain(readFileSync(join(root, 'examples', f), 'utf8').trim());
    const dir = mkdtempSync(join(tmpdir(), 'spillway-example-'));
    const file = join(dir, 'policy.json');
    const original = JSON.parse(readFileSync(join(root, 'examples/policy.json'), 'utf8'));
    writeFileSync(file, JSON.stringify(original));
    const child = spawn(process.execPath, [join(root, 'examples/policy.mjs')], {
      cwd: root,
      env: { ...process.env, PORT: '0', POLICY_FILE: file },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (x: string) => {
      out += x;
    });
    child.stderr!.setEncoding('utf8').on('data', (x: string) => {
      err += x;
    });
    const until = async (what: string, cond: () => boolean) => {
      const end = performance.now() + 15_000;
      while (!cond()) {
        if (performance.now() > end) throw new Error(`${what} not within 15 s: ${out} ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await until('listening', () => /listening on/.test(out));
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(out)![1]);
      const first = await burst(port);
      expect(first.ok + first.limited + first.shed).toBe(120);
      expect(first.ok).toBeLessThanOrEqual(40 + Math.ceil((20 * first.ms) / 1000));
      expect(first.limited).toBeGreaterThan(0);
      expect(first.health).toBe(200);

      // The operator takes the limiter off "/": the running server follows, no restart.
      original.routes[1].limiter = null;
      writeFileSync(file, JSON.stringify(original));
      await until('the reload', () => /policy reloaded: routes/.test(out));
      const open = await burst(port);
      expect(open.limited).toBe(0);
      expect(open.ok + open.shed).toBe(120);

      // A bad edit is refused with its path; the policy in force stays.
      writeFileSync(file, JSON.stringify({ ...original, pools: { db: { limit: 0 } } }));
      await until('the refusal', () => /pools\.db\.limit/.test(err));
      expect((await burst(port)).limited).toBe(0);
    } finally {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
