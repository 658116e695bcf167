#!/usr/bin/env node
/**
 * The `spillway` command. The core package answers `--version` and `help` itself; the simulator's
 * commands (`simulate`, `tune`, `live`, `demo`) live in the separate package spillway-sim (its chart and
 * comparison dependencies stay out of a middleware user's install) and are delegated to it when it
 * is installed.
 *
 * Exit codes: 0 success, 1 failure, 2 usage error.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; readonly isTTY?: boolean; readonly columns?: number };
  cwd: string;
}

/** The version of this package, from its package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const SIM_COMMANDS = new Set(['simulate', 'tune', 'live', 'demo']);

const HELP = `Usage: spillway <command> [options]

Commands:
  check <policy.json>        validate a policy file (with SPILLWAY_* overrides) and print the
                             effective limits per tier and priority     (needs zod)
  simulate <scenario.json>   run a scenario in the simulator          (needs spillway-sim)
  tune <scenario.json>       search governor settings with the simulator (needs spillway-sim)
  live <scenario.json>       run a scenario against a real server      (needs spillway-sim)
  demo [scenario.json]       the live demo: tenants, CPU- and pool-bound, with and without
                             Spillway, and what acted in each phase     (needs spillway-sim)

Options:
  -v, --version              print the version of spillway
  -h, --help                 show this help

Run 'spillway <command> --help' for a command's options.
`;

interface SimCli {
  main(argv: readonly string[], io: CliIO): Promise<number>;
}

async function loadSim(): Promise<SimCli | undefined> {
  try {
    // A variable specifier: spillway does not depend on spillway-sim (the dependency points the other way).
    const name = 'spillway-sim/cli';
    return (await import(name)) as SimCli;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes("'spillway-sim"))
      return undefined;
    throw err;
  }
}

async function check(args: readonly string[], io: CliIO): Promise<number> {
  if (args.length !== 1 || args[0]!.startsWith('-')) {
    io.stderr.write('spillway: check needs exactly one argument, the policy file\n\nUsage: spillway check <policy.json>\n');
    return 2;
  }
  let policy: typeof import('./policy/index.js');
  try {
    policy = await import('./policy/index.js');
  } catch (err) {
    if (String((err as Error).message).includes("'zod'")) {
      io.stderr.write('spillway: check validates with zod, an optional peer dependency: npm install zod\n');
      return 1;
    }
    throw err;
  }
  try {
    const p = await policy.loadPolicy(resolve(io.cwd, args[0]!));
    io.stdout.write(`${args[0]}: valid\n\n${policy.describePolicy(p)}`);
    return 0;
  } catch (err) {
    if (policy.isPolicyError(err) || (err as { code?: string }).code === 'ERR_SPILLWAY_CONFIG') {
      io.stderr.write(`spillway: ${(err as Error).message}\n`);
      return 1;
    }
    throw err;
  }
}

/** Runs the command line `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: readonly string[], io: CliIO): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v' || command === 'version') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === 'check') return check(rest, io);
  if (SIM_COMMANDS.has(command)) {
    const sim = await loadSim();
    if (sim === undefined) {
      io.stderr.write(
        `spillway: '${command}' is a command of the simulator, which is a separate package: npm install --save-dev spillway-sim\n`,
      );
      return 1;
    }
    return sim.main([command, ...rest], io);
  }
  io.stderr.write(`spillway: unknown command "${command}"\n\n${HELP}`);
  return 2;
}

function isEntry(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // Through npm's `bin` link argv[1] is the link; compare real paths.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) {
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() }).then(
    (code) => {
      process.exitCode = code;
    },
  );
}
